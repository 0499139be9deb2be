// Command provload puts a running provd under load and reports what it
// sustained.
//
// By default it is a read load: -concurrency workers fetch one page (an
// item's history page, by default) over and over on keep-alive
// connections for -duration, and provload prints the requests per second
// and the p50, p90, p99 and largest latency of a request, body read
// whole.
//
//	provload -url http://127.0.0.1:8080 -item /01/09506000134352/21/ABC123 -concurrency 8 -duration 10s
//
// With -write it is a write load over the JSON API. With the operator's
// key (-data DIR reads DIR/operator.key, or -operator-key FILE) it enrolls
// a manufacturer and -couriers couriers of its own, registers -items
// items, signs every item's chain of -hops handoff/receive pairs ahead of
// time, then -concurrency workers POST the chains (each item's events in
// order, items in parallel) for at most -duration. It prints events/s and
// the write latency; with -read as well, -read-concurrency workers load
// the first item's history page during the write load (at most
// -read-rate loads a second, if set), and provload prints page views/s
// and their latency too.
//
//	provload -write -data data -items 2000 -hops 4 -concurrency 16 -duration 10s -read
//
// With -scale it is the scale benchmark: provload starts the provd binary
// -provd itself on a fresh data directory -data, enrolls its actors, and
// grows the log step by step to each of -steps items (each item a register
// and -hops handoff/receive pairs, -chunk items signed ahead, not timed,
// then POSTed in batches of -batch by -concurrency workers). After each
// step it reads provd's anonymous RSS (RssAnon of /proc/PID/status: the
// peak sampled during the writes, and once idle after -idle), restarts
// provd (SIGINT, then a new process, timed until /healthz answers 200) and
// loads the history pages of items at random, -read-rate a second from
// -read-concurrency workers for -duration. It prints one table row a step:
// items, events in the log, write events/s, idle and peak RSS in MB,
// restart time in s, page p50 and p99 in ms (docs/scale-out.md).
//
//	provload -scale -provd ./provd -data /tmp/scale -steps 500000,1000000,2000000
//
// With -scale -trillian it runs the same steps on two provd replicas of a
// Trillian tree with the index in MariaDB, starting MariaDB and
// Trillian's log server and signer itself (the tests' harness,
// merkle/trillianlog/trilliantest; run it from the repository, where it
// finds Trillian's schema). Most of a step's items are queued into
// Trillian's tables in bulk, the last -posted POSTed through the
// replicas; each row adds, per replica, memory, page latency and write
// rate, and the time a third replica started on a directory holding only
// the keys takes to serve its first history page, and the rows and bytes
// of the index's and Trillian's tables.
//
//	provload -scale -trillian -provd ./provd -data /tmp/scale-t -steps 100000,250000,500000
//
// A request that fails or answers other than 200 (201 for a POST) counts
// as an error, and provload exits non-zero if any did. A POST answered 429
// or 503 is not an error: the server turned it away (over its capacity,
// over the client's rate, or out of disk), so it is counted apart as
// turned away, and sent again after the Retry-After the server asked for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/provtrail/provtrail/web/api"
	"golang.org/x/time/rate"
)

func main() {
	if os.Getenv("GOGC") == "" {
		// provload holds every event it signed ahead, a heap that grows
		// with -items and -hops and lives for the whole run: at Go's
		// default target the collector would rescan it often, taking CPU
		// from the server it shares the machine with.
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "provload: %v\n", err)
		os.Exit(1)
	}
}

// run parses args, runs the load until its duration is over or ctx ends,
// and prints the result to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, err := parseConfig(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Write {
		return writeRun(ctx, cfg, stdout)
	}
	if cfg.Scale && cfg.Trillian {
		return scaleTrillianRun(ctx, cfg, stdout)
	}
	if cfg.Scale {
		return scaleRun(ctx, cfg, stdout)
	}
	target := cfg.Target()
	fmt.Fprintf(stdout, "GET %s for %v, %d workers\n", target, cfg.Duration, cfg.Concurrency)
	res := readLoad(ctx, cfg, func() string { return target })
	res.report(stdout)
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d requests failed (first: %v)", res.Failed, res.Failed+len(res.Latencies), res.FirstErr)
	}
	return nil
}

// Config is what one load run does.
type Config struct {
	URL         string        // base URL of provd, e.g. http://127.0.0.1:8080
	Item        string        // path of the page to load, e.g. /01/{gtin}/21/{serial}
	Concurrency int           // workers, each with one request in flight
	Duration    time.Duration // how long to load
	Timeout     time.Duration // per request

	// Write mode.
	Write       bool
	OperatorKey string // the operator's key file (DATA/operator.key)
	Items       int    // items registered
	Hops        int    // handoff/receive pairs per item
	Couriers    int    // couriers enrolled
	// Batch is how many events one POST carries: 1 POSTs each event to
	// /api/v1/events; more POST that many items' next events at once to
	// /api/v1/events/batch.
	Batch           int
	Read            bool // also load a history page during the write load
	ReadConcurrency int
	// ReadRate caps the page loads per second, over all page workers:
	// 0 loads as fast as the workers can.
	ReadRate float64

	// Scale mode: provload starts provd itself on Data and grows it to
	// each of Steps items, Chunk items signed and POSTed at a time; Idle is
	// the pause after a step's writes before the idle memory is read.
	Scale bool
	Provd string // the provd binary
	Data  string // provd's data directory
	Steps []int
	Chunk int
	Idle  time.Duration

	// Scale mode on Trillian: provload starts MariaDB and a Trillian log
	// server and signer (the signer integrating up to SignerBatch leaves
	// a pass, a pass every SequencerInterval; MariaDB with a buffer pool
	// of BufferPool) and two provd replicas with the index in MariaDB.
	// Of each step's items, the last Posted are POSTed through the
	// replicas and the others queued into Trillian in bulk.
	Trillian          bool
	SignerBatch       int
	SequencerInterval time.Duration
	BufferPool        string
	Posted            int
}

func parseConfig(args []string, usage io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("provload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base `URL` of a running provd")
	fs.StringVar(&cfg.Item, "item", "", "`path` of the page to load: an item's Digital Link path /01/{gtin}/21/{serial} (required)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "`workers`, each with one request in flight on its own keep-alive connection (16 with -scale, unless given)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to load; with -scale: how long each step's history pages are loaded")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "limit on one request (1m with -scale -trillian, unless given)")
	fs.BoolVar(&cfg.Write, "write", false, "write load: enroll actors, register items and POST handoff/receive chains (needs -data or -operator-key)")
	fs.StringVar(&cfg.Data, "data", "", "with -write: provd's data `directory`, for its operator.key; with -scale: the data directory provd is started on (absent or empty)")
	fs.StringVar(&cfg.OperatorKey, "operator-key", "", "with -write: the operator's key `file` (wins over -data)")
	fs.IntVar(&cfg.Items, "items", 1000, "with -write: items to register, one chain each")
	fs.IntVar(&cfg.Hops, "hops", 4, "with -write or -scale: handoff/receive pairs in each item's chain (1 with -scale, unless given)")
	fs.IntVar(&cfg.Couriers, "couriers", 4, "with -write or -scale: couriers to enroll")
	fs.IntVar(&cfg.Batch, "batch", 1, "with -write or -scale: `events` a POST carries; more than 1 sends that many items' next events in one POST /api/v1/events/batch (32 with -scale, unless given)")
	fs.BoolVar(&cfg.Read, "read", false, "with -write: also load a history page (-item, or the first item's) during the write load")
	fs.IntVar(&cfg.ReadConcurrency, "read-concurrency", 4, "with -write -read, or -scale: page `workers`")
	fs.Float64Var(&cfg.ReadRate, "read-rate", 0, "page loads per second over all page workers, like buyers scanning codes at a steady pace (0: as fast as the workers can; 200 with -scale, unless given)")
	fs.BoolVar(&cfg.Scale, "scale", false, "scale benchmark: start provd (-provd) on a fresh -data directory, grow it to each of -steps items and report memory, restart time, page latency and write rate at each")
	fs.StringVar(&cfg.Provd, "provd", "", "with -scale: the provd `binary` to start")
	steps := "500000,1000000,2000000"
	fs.StringVar(&steps, "steps", steps, "with -scale: comma-separated item `counts` to grow the data directory to, increasing")
	fs.IntVar(&cfg.Chunk, "chunk", 100000, "with -scale: `items` signed ahead, then POSTed, at a time, which bounds provload's own memory")
	fs.DurationVar(&cfg.Idle, "idle", 3*time.Second, "with -scale: pause after a step's writes before the idle memory is read")
	fs.BoolVar(&cfg.Trillian, "trillian", false, "with -scale: start MariaDB and a Trillian log server and signer, and two provd replicas on them with the index in MariaDB; queue most items into Trillian in bulk and POST -posted a step through the replicas (docs/scale-out.md)")
	fs.IntVar(&cfg.SignerBatch, "signer-batch", 20000, "with -scale -trillian: the most `leaves` the signer integrates a pass (its --batch_size)")
	fs.DurationVar(&cfg.SequencerInterval, "sequencer-interval", 50*time.Millisecond, "with -scale -trillian: the signer's pass `interval` (its --sequencer_interval)")
	fs.StringVar(&cfg.BufferPool, "buffer-pool", "1G", "with -scale -trillian: MariaDB's InnoDB buffer pool `size` (its --innodb-buffer-pool-size)")
	fs.IntVar(&cfg.Posted, "posted", 2000, "with -scale -trillian: `items` a step POSTs through the replicas, half to each, for their write rate; the step's other items are queued into Trillian in bulk")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(usage, "Usage: provload -item PATH [flags]\n       provload -write -data DIR [-read] [flags]\n       provload -scale -provd PATH -data DIR [-steps N,N,...] [flags]\n\n"+
				"provload loads one page of a running provd, or writes events to it, and reports the rate and latency.\n\n"+
				"With -scale it starts provd itself on a fresh data directory, grows it to each of -steps items\n"+
				"(defaults: -hops 1 -batch 32 -concurrency 16 -read-rate 200) and prints a row a step: items, events\n"+
				"in the log, write events/s, provd's anonymous RSS idle and peak (MB), restart time until /healthz\n"+
				"answers (s), history page p50 and p99 (ms) of random items. See docs/scale-out.md.\n\nFlags:\n")
			fs.SetOutput(usage)
			fs.PrintDefaults()
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%v (run provload --help)", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments %q (run provload --help)", fs.Args())
	}
	if cfg.Scale {
		return scaleDefaults(fs, cfg, steps)
	}
	if cfg.OperatorKey == "" && cfg.Data != "" {
		cfg.OperatorKey = filepath.Join(cfg.Data, "operator.key")
	}
	return cfg, nil
}

// scaleDefaults refuses the flags -scale has no use for and sets the
// defaults of its own where the flag was not given: one hop, batches of
// 32 from 16 workers, pages at 200 a second, and with -trillian a minute
// for a request.
func scaleDefaults(fs *flag.FlagSet, cfg Config, steps string) (Config, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"url", "item", "write", "read", "items", "operator-key"} {
		if set[name] {
			return Config{}, fmt.Errorf("-%s does not go with -scale, which starts provd itself (run provload --help)", name)
		}
	}
	if !set["hops"] {
		cfg.Hops = 1
	}
	if !set["batch"] {
		cfg.Batch = 32
	}
	if !set["concurrency"] {
		cfg.Concurrency = 16
	}
	if !set["read-rate"] {
		cfg.ReadRate = 200
	}
	if cfg.Trillian && !set["timeout"] {
		// A POST to a replica waits for one QueueLeaf transaction an
		// event and the signer's next pass, behind the other workers'.
		cfg.Timeout = time.Minute
	}
	for f := range strings.SplitSeq(steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return Config{}, fmt.Errorf("-steps %q: want comma-separated item counts, e.g. 500000,1000000", steps)
		}
		cfg.Steps = append(cfg.Steps, n)
	}
	return cfg, nil
}

// Validate says what is wrong with cfg, if anything.
func (c Config) Validate() error {
	if c.Scale {
		return c.validateScale()
	}
	if c.Trillian {
		return errors.New("-trillian goes with -scale")
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("-url %q: want http(s)://host[:port]", c.URL)
	case c.Item == "" && !c.Write:
		return errors.New("-item: say which page to load, e.g. -item /01/09506000134352/21/ABC123")
	case c.Item != "" && !strings.HasPrefix(c.Item, "/"):
		return fmt.Errorf("-item %q: want a path starting with /", c.Item)
	case c.Concurrency < 1:
		return fmt.Errorf("-concurrency %d: want at least 1", c.Concurrency)
	case c.Duration <= 0:
		return fmt.Errorf("-duration %v: want more than 0", c.Duration)
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout %v: want more than 0", c.Timeout)
	case c.ReadRate < 0 || math.IsNaN(c.ReadRate) || math.IsInf(c.ReadRate, 0):
		return fmt.Errorf("-read-rate %v: want page loads per second, 0 or more (0: no cap)", c.ReadRate)
	case !c.Write:
		if c.OperatorKey != "" || c.Read {
			return errors.New("-data, -operator-key and -read go with -write")
		}
		return nil
	case c.OperatorKey == "":
		return errors.New("-write needs the operator's key to enroll its actors: -data DIR (of provd) or -operator-key FILE")
	case c.Items < 1:
		return fmt.Errorf("-items %d: want at least 1", c.Items)
	case c.Hops < 1:
		return fmt.Errorf("-hops %d: want at least 1", c.Hops)
	case c.Couriers < 2 || c.Couriers > 100:
		return fmt.Errorf("-couriers %d: want 2 to 100 (a courier hands off to another)", c.Couriers)
	case c.Batch < 1 || c.Batch > api.MaxBatch:
		return fmt.Errorf("-batch %d: want 1 to %d events a POST", c.Batch, api.MaxBatch)
	case c.Read && c.ReadConcurrency < 1:
		return fmt.Errorf("-read-concurrency %d: want at least 1", c.ReadConcurrency)
	}
	return nil
}

// validateScale says what is wrong with a -scale cfg, if anything.
func (c Config) validateScale() error {
	switch {
	case c.Provd == "":
		return errors.New("-scale needs the provd binary to start: -provd PATH")
	case c.Data == "":
		return errors.New("-scale needs a data directory for provd, absent or empty: -data DIR")
	case len(c.Steps) == 0:
		return errors.New("-steps: say which item counts to grow to, e.g. -steps 500000,1000000")
	case c.Chunk < 1:
		return fmt.Errorf("-chunk %d: want at least 1", c.Chunk)
	case c.Idle < 0:
		return fmt.Errorf("-idle %v: want 0 or more", c.Idle)
	case c.Hops < 1:
		return fmt.Errorf("-hops %d: want at least 1", c.Hops)
	case c.Couriers < 2 || c.Couriers > 100:
		return fmt.Errorf("-couriers %d: want 2 to 100 (a courier hands off to another)", c.Couriers)
	case c.Batch < 1 || c.Batch > api.MaxBatch:
		return fmt.Errorf("-batch %d: want 1 to %d events a POST", c.Batch, api.MaxBatch)
	case c.Concurrency < 1:
		return fmt.Errorf("-concurrency %d: want at least 1", c.Concurrency)
	case c.ReadConcurrency < 1:
		return fmt.Errorf("-read-concurrency %d: want at least 1", c.ReadConcurrency)
	case c.SignerBatch < 1:
		return fmt.Errorf("-signer-batch %d: want at least 1", c.SignerBatch)
	case c.SequencerInterval <= 0:
		return fmt.Errorf("-sequencer-interval %v: want more than 0", c.SequencerInterval)
	case c.Posted < 0:
		return fmt.Errorf("-posted %d: want 0 or more", c.Posted)
	case c.ReadRate <= 0 || math.IsNaN(c.ReadRate) || math.IsInf(c.ReadRate, 0):
		return fmt.Errorf("-read-rate %v: want page loads per second, more than 0", c.ReadRate)
	case c.Duration <= 0:
		return fmt.Errorf("-duration %v: want more than 0", c.Duration)
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout %v: want more than 0", c.Timeout)
	}
	for i, n := range c.Steps {
		if n < 1 || (i > 0 && n <= c.Steps[i-1]) {
			return fmt.Errorf("-steps %v: want item counts of at least 1, each larger than the one before", c.Steps)
		}
	}
	return nil
}

// Target is the URL the load fetches.
func (c Config) Target() string { return strings.TrimRight(c.URL, "/") + c.Item }

// A Result is what a load run measured.
type Result struct {
	Elapsed   time.Duration
	Latencies []time.Duration // of the requests that succeeded, sorted
	Bytes     int64           // body bytes read, over successful requests
	Failed    int
	FirstErr  error
	// TurnedAway counts the writes answered 429 or 503 (the server shed
	// them; each was sent again after its Retry-After): not failures.
	TurnedAway      int
	FirstTurnedAway error
}

// Percentile returns the latency that p (0 to 1) of the successful
// requests took at most.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := min(int(p*float64(len(r.Latencies))), len(r.Latencies)-1)
	return r.Latencies[i]
}

func (r Result) report(w io.Writer) {
	n := len(r.Latencies)
	fmt.Fprintf(w, "requests  %d ok, %d failed, in %v\n", n, r.Failed, r.Elapsed.Round(time.Millisecond))
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "rate      %.0f requests/s, %.1f MiB/s\n", float64(n)/r.Elapsed.Seconds(), float64(r.Bytes)/(1<<20)/r.Elapsed.Seconds())
	fmt.Fprintf(w, "latency   p50 %v  p90 %v  p99 %v  max %v\n",
		round(r.Percentile(0.50)), round(r.Percentile(0.90)), round(r.Percentile(0.99)), round(r.Latencies[n-1]))
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(10 * time.Microsecond)
}

// A worker's tally.
type tally struct {
	took            []time.Duration
	bytes           int64
	failed          int
	firstErr        error
	turnedAway      int
	firstTurnedAway error
}

// fail counts a failed request.
func (t *tally) fail(err error) {
	t.failed++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// shed counts a request the server turned away (429 or 503).
func (t *tally) shed(err error) {
	t.turnedAway++
	if t.firstTurnedAway == nil {
		t.firstTurnedAway = err
	}
}

// merge sums the workers' tallies of a run that started at start.
func merge(tallies []tally, start time.Time) Result {
	res := Result{Elapsed: time.Since(start)}
	for _, t := range tallies {
		res.Latencies = append(res.Latencies, t.took...)
		res.Bytes += t.bytes
		res.Failed += t.failed
		res.TurnedAway += t.turnedAway
		if res.FirstErr == nil {
			res.FirstErr = t.firstErr
		}
		if res.FirstTurnedAway == nil {
			res.FirstTurnedAway = t.firstTurnedAway
		}
	}
	slices.Sort(res.Latencies)
	return res
}

// readLoad GETs the URLs target returns, one call a request, from
// cfg.Concurrency workers until cfg.Duration is over or ctx ends.
func readLoad(ctx context.Context, cfg Config, target func() string) Result {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // measure the server's pages as it sends them
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	tallies := make([]tally, cfg.Concurrency)
	pace := rate.NewLimiter(rate.Inf, 1)
	if cfg.ReadRate > 0 {
		pace = rate.NewLimiter(rate.Limit(cfg.ReadRate), 1)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range tallies {
		t := &tallies[w]
		wg.Go(func() {
			for ctx.Err() == nil {
				if pace.Wait(ctx) != nil {
					return // the run is over
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, target(), nil)
				if err != nil {
					t.fail(fmt.Errorf("request: %w", err))
					continue
				}
				t0 := time.Now()
				n, err := get(client, req)
				took := time.Since(t0)
				switch {
				case err != nil && ctx.Err() != nil:
					return // the run is over: not the server's fault
				case err != nil:
					t.fail(err)
				default:
					t.took = append(t.took, took)
					t.bytes += n
				}
			}
		})
	}
	wg.Wait()
	return merge(tallies, start)
}

// get sends req and reads the body whole, so the connection is reused.
func get(client *http.Client, req *http.Request) (int64, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("status %s", resp.Status)
	}
	return n, nil
}
