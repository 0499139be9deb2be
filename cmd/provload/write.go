package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/valyala/fasthttp"
	"golang.org/x/mod/sumdb/note"
)

// loadGTIN is a GS1 example GTIN-14 (check digit verified).
const loadGTIN = "09506000134352"

// A signed event, ready to POST, and the leaf hash its receipt must name.
type signedEvent struct {
	leaf []byte
	hash string
}

// writeRun is the write load: enroll, sign ahead, register, then POST the
// chains for cfg.Duration.
func writeRun(ctx context.Context, cfg Config, stdout io.Writer) error {
	op, _, err := merkle.LoadKeyFile(cfg.OperatorKey)
	if err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	base := strings.TrimRight(cfg.URL, "/")
	readers := 0
	if cfg.Read {
		readers = cfg.ReadConcurrency
	}
	client := newPoster(base, cfg.Concurrency+readers, cfg.Timeout)
	defer client.close()
	route, per := "/api/v1/events", ""
	if cfg.Batch > 1 {
		route, per = "/api/v1/events/batch", fmt.Sprintf(" (up to %d items' events a POST)", cfg.Batch)
	}
	fmt.Fprintf(stdout, "POST %s%s: %d items of 1 register + %d handoff/receive pairs, %d workers%s, for at most %v\n",
		base, route, cfg.Items, cfg.Hops, cfg.Concurrency, per, cfg.Duration)

	// Actors of this run only, so that runs on one log do not collide.
	var tag [4]byte
	rand.Read(tag[:])
	prefix := "load-" + hex.EncodeToString(tag[:])
	maker := prefix + "-maker"
	couriers := make([]string, cfg.Couriers)
	for i := range couriers {
		couriers[i] = fmt.Sprintf("%s-courier%d", prefix, i)
	}
	signers := map[string]note.Signer{}
	now := time.Now().UTC().Truncate(time.Second)
	t0 := time.Now()
	enrollTurnedAway := 0
	for _, id := range append([]string{maker}, couriers...) {
		skey, vkey, err := merkle.GenerateKey(id)
		if err != nil {
			return err
		}
		if signers[id], err = note.NewSigner(skey); err != nil {
			return err
		}
		role := provenance.RoleCourier
		if id == maker {
			role = provenance.RoleManufacturer
		}
		leaf, err := provenance.Sign(provenance.Event{Kind: provenance.KindEnroll, Actor: op.Name(), Time: now,
			Enroll: &provenance.Actor{ID: id, Role: role, Name: "provload " + id, Key: vkey}}, op)
		if err != nil {
			return err
		}
		if _, err := postAgain(ctx, client, signedEvent{leaf: leaf, hash: merkle.LeafHash(leaf).String()}, func(error) { enrollTurnedAway++ }); err != nil {
			return fmt.Errorf("enroll %s: %w", id, err)
		}
	}
	fmt.Fprintf(stdout, "enrolled  %s and %d couriers in %v%s\n", maker, len(couriers), time.Since(t0).Round(time.Millisecond), turnedAwayNote(enrollTurnedAway))

	t0 = time.Now()
	items, chains, err := presign(cfg, prefix, maker, couriers, signers, now)
	if err != nil {
		return err
	}
	n := cfg.Items * (1 + 2*cfg.Hops)
	took := time.Since(t0)
	fmt.Fprintf(stdout, "signed    %d events ahead in %v (%.0f signatures/s)\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())

	registers := make([][]signedEvent, len(chains))
	for i, c := range chains {
		registers[i], chains[i] = c[:1], c[1:]
	}
	post := postChains
	if cfg.Batch > 1 {
		post = func(ctx context.Context, client *poster, chains [][]signedEvent, workers int) Result {
			return postBatches(ctx, client, chains, workers, cfg.Batch)
		}
	}
	reg := post(ctx, client, registers, cfg.Concurrency)
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
		wg.Go(func() { pages, _ = readLoad(wctx, rcfg, target) })
	}
	res := post(wctx, client, chains, cfg.Concurrency)
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

// A poster POSTs signed events to provd's API. It uses fasthttp's client:
// Go's net/http client took about 50 µs of CPU a request (two goroutines
// a connection and the handoffs between them), a quarter of what provd
// itself spends on an event, and on a machine shared with provd that
// capped the write rate provload could measure (docs/performance.md).
type poster struct {
	client   *fasthttp.Client
	url      string // the events route
	batchURL string // the batch route
}

func newPoster(base string, conns int, timeout time.Duration) *poster {
	return &poster{
		// Timeouts per read and write of a connection, not DoTimeout:
		// that runs each request on a goroutine of its own.
		client: &fasthttp.Client{
			MaxConnsPerHost:          conns,
			MaxIdleConnDuration:      90 * time.Second,
			ReadTimeout:              timeout,
			WriteTimeout:             timeout,
			NoDefaultUserAgentHeader: true,
		},
		url: base + "/api/v1/events", batchURL: base + "/api/v1/events/batch",
	}
}

func (p *poster) close() { p.client.CloseIdleConnections() }

// presign signs every item's chain: register by maker, then hops
// handoff/receive pairs through the couriers, each event naming the leaf
// hash of the one before. The work is spread over the CPUs.
func presign(cfg Config, prefix, maker string, couriers []string, signers map[string]note.Signer, now time.Time) ([]provenance.ItemID, [][]signedEvent, error) {
	items := make([]provenance.ItemID, cfg.Items)
	chains := make([][]signedEvent, cfg.Items)
	errs := make([]error, cfg.Items)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Items {
					return
				}
				items[i], chains[i], errs[i] = signChain(cfg.Hops, fmt.Sprintf("%s-%d", strings.ToUpper(prefix), i), i, maker, couriers, signers, now)
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
		chain = append(chain, signedEvent{leaf: leaf, hash: prev.String()})
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
func postChains(ctx context.Context, client *poster, chains [][]signedEvent, workers int) Result {
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
					took, err := postAgain(ctx, client, ev, t.shed)
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

// A turnedAway is a 429 or 503 answer: the server shed the write (over
// capacity, over the client's rate, or out of disk) and asks to be sent
// it again after wait.
type turnedAway struct {
	status string
	body   []byte
	wait   time.Duration
}

func (e *turnedAway) Error() string {
	return fmt.Sprintf("status %s: %s", e.status, bytes.TrimSpace(e.body))
}

// retryWait is the wait a Retry-After header asks for, in seconds; 1 s if
// it says none.
func retryWait(h string) time.Duration {
	if n, err := strconv.Atoi(h); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return time.Second
}

// postAgain posts ev until it is not turned away or ctx ends, waiting as
// the server asks in between; onTurnedAway is called for each turn-away.
func postAgain(ctx context.Context, client *poster, ev signedEvent, onTurnedAway func(error)) (time.Duration, error) {
	for {
		took, err := client.post(ctx, ev)
		var ta *turnedAway
		if !errors.As(err, &ta) {
			return took, err
		}
		onTurnedAway(err)
		t := time.NewTimer(ta.wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return took, ctx.Err()
		case <-t.C:
		}
	}
}

// post submits one event and checks its receipt names its leaf, fresh.
// A 429 or 503 is a *turnedAway. It sends nothing once ctx has ended; a
// request already sent is waited for (each read and write of it up to the
// timeout).
func (p *poster) post(ctx context.Context, ev signedEvent) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(p.url)
	req.Header.SetMethod(http.MethodPost)
	req.Header.SetContentType("text/plain")
	req.SetBodyRaw(ev.leaf)
	t0 := time.Now()
	if err := p.client.Do(req, resp); err != nil {
		return 0, fmt.Errorf("POST %s: %w", p.url, err)
	}
	took := time.Since(t0)
	b, code := resp.Body(), resp.StatusCode()
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		return took, &turnedAway{status: status, body: bytes.Clone(b), wait: retryWait(string(resp.Header.Peek("Retry-After")))}
	}
	if code != http.StatusCreated {
		return took, fmt.Errorf("status %s: %s", status, bytes.TrimSpace(b))
	}
	var r struct {
		LeafHash  string `json:"leaf_hash"`
		Duplicate bool   `json:"duplicate"`
	}
	switch err := json.Unmarshal(b, &r); {
	case err != nil:
		return took, fmt.Errorf("receipt %q: %w", b, err)
	case r.LeafHash != ev.hash:
		return took, fmt.Errorf("receipt names leaf %s, want %s", r.LeafHash, ev.hash)
	case r.Duplicate:
		return took, fmt.Errorf("receipt says the event %s was a duplicate", ev.hash)
	}
	return took, nil
}

// postBatches POSTs chains as batches: each worker takes size chains and
// sends the next event of each in one batch, until they are all done or
// ctx ends. An event turned away within a batch is sent again in the next
// one, after the wait the server asked; a failed event ends its chain. An
// event's latency is its batch's.
func postBatches(ctx context.Context, client *poster, chains [][]signedEvent, workers, size int) Result {
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
					for j, c := range group {
						if step[j] >= 0 && step[j] < len(c) {
							evs = append(evs, c[step[j]])
							of = append(of, j)
						}
					}
					if len(evs) == 0 {
						break
					}
					took, errs, wait, err := client.postBatch(ctx, evs)
					var ta *turnedAway
					switch {
					case err != nil && ctx.Err() != nil:
						return // the run is over
					case errors.As(err, &ta):
						t.shed(err)
						wait = ta.wait
					case err != nil:
						t.fail(err)
						return
					}
					for k, err := range errs {
						switch {
						case err == nil:
							step[of[k]]++
							t.took = append(t.took, took)
						case errors.As(err, &ta):
							t.shed(err)
						default:
							t.fail(err)
							step[of[k]] = -1
						}
					}
					if wait > 0 {
						tm := time.NewTimer(wait)
						select {
						case <-ctx.Done():
							tm.Stop()
							return
						case <-tm.C:
						}
					}
				}
			}
		})
	}
	wg.Wait()
	return merge(tallies, start)
}

// postBatch submits evs in one batch and checks each receipt names its
// leaf, fresh. It returns one error per event (a *turnedAway for one the
// server turned away), and the wait the server asked for before sending
// those again. A batch turned away whole is a *turnedAway error.
func (p *poster) postBatch(ctx context.Context, evs []signedEvent) (took time.Duration, errs []error, wait time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return 0, nil, 0, err
	}
	var body struct {
		Events []string `json:"events"`
	}
	for _, ev := range evs {
		body.Events = append(body.Events, string(ev.leaf))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, 0, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(p.batchURL)
	req.Header.SetMethod(http.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(b)
	t0 := time.Now()
	if err := p.client.Do(req, resp); err != nil {
		return 0, nil, 0, fmt.Errorf("POST %s: %w", p.batchURL, err)
	}
	took = time.Since(t0)
	rb, code := resp.Body(), resp.StatusCode()
	status := fmt.Sprintf("%d %s", code, http.StatusText(code))
	wait = retryWait(string(resp.Header.Peek("Retry-After")))
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		return took, nil, wait, &turnedAway{status: status, body: bytes.Clone(rb), wait: wait}
	}
	if code != http.StatusOK {
		return took, nil, 0, fmt.Errorf("status %s: %s", status, bytes.TrimSpace(rb))
	}
	var r struct {
		Results []struct {
			Status  int `json:"status"`
			Receipt *struct {
				LeafHash  string `json:"leaf_hash"`
				Duplicate bool   `json:"duplicate"`
			} `json:"receipt"`
			Error json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(rb, &r); err != nil {
		return took, nil, 0, fmt.Errorf("batch answer %.200q: %w", rb, err)
	}
	if len(r.Results) != len(evs) {
		return took, nil, 0, fmt.Errorf("batch answer has %d results for %d events", len(r.Results), len(evs))
	}
	errs = make([]error, len(evs))
	anyTurnedAway := false
	for i, res := range r.Results {
		st := fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status))
		switch {
		case res.Status == http.StatusTooManyRequests || res.Status == http.StatusServiceUnavailable:
			errs[i] = &turnedAway{status: st, body: res.Error, wait: wait}
			anyTurnedAway = true
		case res.Status != http.StatusCreated || res.Receipt == nil:
			errs[i] = fmt.Errorf("event %s: status %s: %s", evs[i].hash, st, res.Error)
		case res.Receipt.LeafHash != evs[i].hash:
			errs[i] = fmt.Errorf("receipt names leaf %s, want %s", res.Receipt.LeafHash, evs[i].hash)
		case res.Receipt.Duplicate:
			errs[i] = fmt.Errorf("receipt says the event %s was a duplicate", evs[i].hash)
		}
	}
	if !anyTurnedAway {
		wait = 0
	}
	return took, errs, wait, nil
}
