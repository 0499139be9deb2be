package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
	"golang.org/x/mod/sumdb/note"
)

// loadGTIN is a GS1 example GTIN-14 (check digit verified).
const loadGTIN = "09506000134352"

// A signed event, ready to POST, and the leaf hash its receipt must name.
type signedEvent struct {
	leaf []byte
	hash merkle.Hash
}

// writeRun is the write load: enroll, sign ahead, register, then POST the
// chains for cfg.Duration.
func writeRun(ctx context.Context, cfg Config, stdout io.Writer) error {
	op, _, err := merkle.LoadKeyFile(cfg.OperatorKey)
	if err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	base := strings.TrimRight(cfg.URL, "/")
	c, err := newClient(base, cfg.Concurrency, cfg.Timeout)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	route, per := api.EventsPath, ""
	if cfg.Batch > 1 {
		route, per = api.BatchPath, fmt.Sprintf(" (up to %d items' events a POST)", cfg.Batch)
	}
	fmt.Fprintf(stdout, "POST %s%s: %d items of 1 register + %d handoff/receive pairs, %d workers%s, for at most %v\n",
		base, route, cfg.Items, cfg.Hops, cfg.Concurrency, per, cfg.Duration)

	t0 := time.Now()
	now := time.Now().UTC().Truncate(time.Second)
	a, enrollTurnedAway, err := enroll(ctx, c, op, cfg.Couriers, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "enrolled  %s and %d couriers in %v%s\n", a.maker, len(a.couriers), time.Since(t0).Round(time.Millisecond), turnedAwayNote(enrollTurnedAway))

	t0 = time.Now()
	items, chains, err := presign(a, cfg.Hops, strings.ToUpper(a.prefix)+"-", 0, cfg.Items, now)
	if err != nil {
		return err
	}
	n := cfg.Items * (1 + 2*cfg.Hops)
	took := time.Since(t0)
	fmt.Fprintf(stdout, "signed    %d events ahead in %v (%.0f signatures/s)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	registers := make([][]signedEvent, len(chains))
	for i, chain := range chains {
		registers[i], chains[i] = chain[:1], chain[1:]
	}
	post := poster(cfg.Batch)
	reg := post(ctx, c, registers, cfg.Concurrency)
	fmt.Fprintf(stdout, "register  %d items in %v (%.0f events/s, p99 %v), %d failed%s\n", len(reg.Latencies), reg.Elapsed.Round(time.Millisecond),
		float64(len(reg.Latencies))/reg.Elapsed.Seconds(), round(reg.Percentile(0.99)), reg.Failed, turnedAwayNote(reg.TurnedAway))
	if reg.Failed > 0 {
		return fmt.Errorf("%d of %d registrations failed (first: %v)", reg.Failed, cfg.Items, reg.FirstErr)
	}

	wctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var pages Result
	var wg sync.WaitGroup
	target := ""
	if cfg.Read {
		target = base + cfg.Item
		if cfg.Item == "" {
			target = items[0].DigitalLink(base)
		}
		rcfg := cfg
		rcfg.Concurrency, rcfg.Duration = cfg.ReadConcurrency, cfg.Duration
		wg.Go(func() { pages = readLoad(wctx, rcfg, func() string { return target }) })
	}
	res := post(wctx, c, chains, cfg.Concurrency)
	cancel() // the page load lasts as long as the write load
	wg.Wait()

	done := "all chains done"
	if len(res.Latencies)+res.Failed < cfg.Items*2*cfg.Hops {
		done = "stopped at -duration"
	}
	k := len(res.Latencies)
	fmt.Fprintf(stdout, "events    %d ok, %d failed, %d turned away (429/503, sent again), in %v (%s)\n", k, res.Failed, res.TurnedAway, res.Elapsed.Round(time.Millisecond), done)
	if res.TurnedAway > 0 {
		fmt.Fprintf(stdout, "429/503   first: %v\n", res.FirstTurnedAway)
	}
	if k > 0 {
		fmt.Fprintf(stdout, "rate      %.0f events/s\n", float64(k)/res.Elapsed.Seconds())
		fmt.Fprintf(stdout, "latency   p50 %v  p90 %v  p99 %v  max %v\n",
			round(res.Percentile(0.50)), round(res.Percentile(0.90)), round(res.Percentile(0.99)), round(res.Latencies[k-1]))
	}
	if cfg.Read {
		p := len(pages.Latencies)
		fmt.Fprintf(stdout, "pages     GET %s, %d workers: %d ok, %d failed, in %v\n", target, cfg.ReadConcurrency, p, pages.Failed, pages.Elapsed.Round(time.Millisecond))
		if p > 0 {
			fmt.Fprintf(stdout, "page rate %.0f page views/s\n", float64(p)/pages.Elapsed.Seconds())
			fmt.Fprintf(stdout, "page lat  p50 %v  p90 %v  p99 %v  max %v\n",
				round(pages.Percentile(0.50)), round(pages.Percentile(0.90)), round(pages.Percentile(0.99)), round(pages.Latencies[p-1]))
		}
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d events failed (first: %v)", res.Failed, res.Failed+k, res.FirstErr)
	}
	if pages.Failed > 0 {
		return fmt.Errorf("%d of %d page views failed (first: %v)", pages.Failed, pages.Failed+len(pages.Latencies), pages.FirstErr)
	}
	return nil
}

// turnedAwayNote says how often a phase was turned away, if it was.
func turnedAwayNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", turned away %d times (429/503, sent again)", n)
}

// The actors of one run: a manufacturer and its couriers, with their
// signers. Their ids carry a random tag, so that runs on one log do not
// collide.
type actors struct {
	prefix   string // "load-" and the run's tag
	maker    string
	couriers []string
	signers  map[string]note.Signer
}

// enroll makes a manufacturer and n couriers of a run of its own and
// enrolls them with the operator's signer op, at now. It returns how
// often an enrollment was turned away (and sent again).
func enroll(ctx context.Context, c *client.Client, op note.Signer, n int, now time.Time) (actors, int, error) {
	var tag [4]byte
	rand.Read(tag[:])
	a := actors{prefix: "load-" + hex.EncodeToString(tag[:]), signers: map[string]note.Signer{}}
	a.maker = a.prefix + "-maker"
	a.couriers = make([]string, n)
	for i := range a.couriers {
		a.couriers[i] = fmt.Sprintf("%s-courier%d", a.prefix, i)
	}
	turnedAway := 0
	for _, id := range append([]string{a.maker}, a.couriers...) {
		skey, vkey, err := merkle.GenerateKey(id)
		if err != nil {
			return a, turnedAway, err
		}
		if a.signers[id], err = note.NewSigner(skey); err != nil {
			return a, turnedAway, err
		}
		role := provenance.RoleCourier
		if id == a.maker {
			role = provenance.RoleManufacturer
		}
		leaf, err := provenance.Sign(provenance.Event{Kind: provenance.KindEnroll, Actor: op.Name(), Time: now,
			Enroll: &provenance.Actor{ID: id, Role: role, Name: "provload " + id, Key: vkey}}, op)
		if err != nil {
			return a, turnedAway, err
		}
		if _, err := postAgain(ctx, c, signedEvent{leaf: leaf, hash: merkle.LeafHash(leaf)}, func(error) { turnedAway++ }); err != nil {
			return a, turnedAway, fmt.Errorf("enroll %s: %w", id, err)
		}
	}
	return a, turnedAway, nil
}

// poster returns the way chains are POSTed: each event on its own if
// batch is 1, else batch items' next events a POST.
func poster(batch int) func(ctx context.Context, c *client.Client, chains [][]signedEvent, workers int) Result {
	if batch <= 1 {
		return postChains
	}
	return func(ctx context.Context, c *client.Client, chains [][]signedEvent, workers int) Result {
		return postBatches(ctx, c, chains, workers, batch)
	}
}

// newClient returns a client of the provd at base for conns workers,
// each with one request in flight: it keeps a connection open for each,
// so that the load measures the server's work on events, not the set-up
// of connections.
func newClient(base string, conns int, timeout time.Duration) (*client.Client, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return client.New(base, &http.Client{Transport: tr, Timeout: timeout})
}

// presign signs the chains of n items, numbered from first on, with
// serials serialPrefix and their number: register by a's maker, then hops
// handoff/receive pairs through its couriers, each event naming the leaf
// hash of the one before. The work is spread over the CPUs.
func presign(a actors, hops int, serialPrefix string, first, n int, now time.Time) ([]provenance.ItemID, [][]signedEvent, error) {
	items := make([]provenance.ItemID, n)
	chains := make([][]signedEvent, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				items[i], chains[i], errs[i] = signChain(hops, serialPrefix+strconv.Itoa(first+i), first+i, a.maker, a.couriers, a.signers, now)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, fmt.Errorf("sign ahead: %w", err)
		}
	}
	return items, chains, nil
}

func signChain(hops int, serial string, i int, maker string, couriers []string, signers map[string]note.Signer, now time.Time) (provenance.ItemID, []signedEvent, error) {
	id, err := provenance.NewItemID(loadGTIN, serial)
	if err != nil {
		return id, nil, err
	}
	chain := make([]signedEvent, 0, 1+2*hops)
	var prev merkle.Hash
	add := func(e provenance.Event) error {
		e.Time, e.Item, e.Prev = now, id, prev
		leaf, err := provenance.Sign(e, signers[e.Actor])
		if err != nil {
			return err
		}
		prev = merkle.LeafHash(leaf)
		chain = append(chain, signedEvent{leaf: leaf, hash: prev})
		return nil
	}
	if err := add(provenance.Event{Kind: provenance.KindRegister, Actor: maker, Place: "Guangzhou",
		Register: &provenance.Register{Product: "provload item", Lot: "LOAD"}}); err != nil {
		return id, nil, err
	}
	holder := maker
	for h := range hops {
		to := couriers[(i+h)%len(couriers)]
		if to == holder { // one courier only
			break
		}
		if err := add(provenance.Event{Kind: provenance.KindHandoff, Actor: holder, Handoff: &provenance.Handoff{To: to}}); err != nil {
			return id, nil, err
		}
		if err := add(provenance.Event{Kind: provenance.KindReceive, Actor: to, Receive: &provenance.Receive{By: to}}); err != nil {
			return id, nil, err
		}
		holder = to
	}
	return id, chain, nil
}

// postChains POSTs chains from workers, each chain's events in order, until
// all are done or ctx ends. A failed event ends its chain.
func postChains(ctx context.Context, c *client.Client, chains [][]signedEvent, workers int) Result {
	tallies := make([]tally, workers)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(chains) {
					return
				}
				for _, ev := range chains[i] {
					took, err := postAgain(ctx, c, ev, t.shed)
					if err != nil && ctx.Err() != nil {
						return // the run is over
					}
					if err != nil {
						t.fail(err)
						break
					}
					t.took = append(t.took, took)
				}
			}
		})
	}
	wg.Wait()
	return merge(tallies, start)
}

// retryWait is the wait a turned-away write asked for; 1 s if it asked
// for none.
func retryWait(e *client.Error) time.Duration {
	if e.RetryAfter > 0 {
		return e.RetryAfter
	}
	return time.Second
}

// turnedAway returns err as the *client.Error of a write the server turned
// away (429 or 503), if it is one.
func turnedAway(err error) (*client.Error, bool) {
	var ce *client.Error
	if errors.As(err, &ce) && ce.TurnedAway() {
		return ce, true
	}
	return nil, false
}

// statusError says what an error answer was: its status and code, then
// its message. Other errors it returns as they are.
func statusError(err error) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return err
	}
	return fmt.Errorf("status %d %s: %s: %w", ce.Status, http.StatusText(ce.Status), ce.Code, err)
}

// postAgain posts ev until it is not turned away or ctx ends, waiting as
// the server asks in between; onTurnedAway is called for each turn-away.
// It returns how long the last POST took.
func postAgain(ctx context.Context, c *client.Client, ev signedEvent, onTurnedAway func(error)) (time.Duration, error) {
	for {
		t0 := time.Now()
		r, err := c.PostEvent(ctx, ev.leaf)
		took := time.Since(t0)
		if ce, ok := turnedAway(err); ok {
			onTurnedAway(statusError(ce))
			if err := client.Wait(ctx, retryWait(ce)); err != nil {
				return took, err
			}
			continue
		}
		if err != nil {
			return took, statusError(err)
		}
		return took, checkReceipt(r, ev)
	}
}

// checkReceipt checks a receipt names ev's leaf, and that the log did not
// hold it already: every event of a run is new.
func checkReceipt(r api.Receipt, ev signedEvent) error {
	switch {
	case r.LeafHash != ev.hash:
		return fmt.Errorf("receipt names leaf %s, want %s", r.LeafHash, ev.hash)
	case r.Duplicate:
		return fmt.Errorf("receipt says the event %s was a duplicate", ev.hash)
	}
	return nil
}

// postBatches POSTs chains as batches: each worker takes size chains and
// sends the next event of each in one batch, until they are all done or
// ctx ends. An event turned away within a batch is sent again in the next
// one, after the wait the server asked; a failed event ends its chain. An
// event's latency is its batch's.
func postBatches(ctx context.Context, c *client.Client, chains [][]signedEvent, workers, size int) Result {
	tallies := make([]tally, workers)
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		wg.Go(func() {
			for ctx.Err() == nil {
				from := int(next.Add(int64(size)) - int64(size))
				if from >= len(chains) {
					return
				}
				group := chains[from:min(from+size, len(chains))]
				step := make([]int, len(group)) // the next event of each chain; -1 once it failed
				for ctx.Err() == nil {
					var evs []signedEvent
					var of []int // the chain of each of evs
					for j, chain := range group {
						if step[j] >= 0 && step[j] < len(chain) {
							evs = append(evs, chain[step[j]])
							of = append(of, j)
						}
					}
					if len(evs) == 0 {
						break
					}
					leaves := make([][]byte, len(evs))
					for k, ev := range evs {
						leaves[k] = ev.leaf
					}
					t0 := time.Now()
					results, err := c.PostBatch(ctx, leaves)
					took := time.Since(t0)
					var wait time.Duration
					ce, shed := turnedAway(err)
					switch {
					case err != nil && ctx.Err() != nil:
						return // the run is over
					case shed:
						t.shed(statusError(ce))
						wait = retryWait(ce)
					case err != nil:
						t.fail(err)
						return
					}
					for k, res := range results {
						err := res.Err
						if err == nil {
							err = checkReceipt(res.Receipt, evs[k])
						}
						ce, shed := turnedAway(err)
						switch {
						case err == nil:
							step[of[k]]++
							t.took = append(t.took, took)
						case shed:
							t.shed(statusError(ce))
							wait = max(wait, retryWait(ce))
						default:
							t.fail(fmt.Errorf("event %s: %w", evs[k].hash, statusError(err)))
							step[of[k]] = -1
						}
					}
					if wait > 0 && client.Wait(ctx, wait) != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return merge(tallies, start)
}
