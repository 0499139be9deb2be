package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

const (
	// sampleEvery is how often provd's memory is read during a step's
	// writes, for its peak.
	sampleEvery = 100 * time.Millisecond
	// startWithin bounds a start of provd: until it answers /healthz.
	startWithin = 5 * time.Minute
	// stopWithin bounds a stop of provd after SIGINT: its shutdown
	// timeout and the close of its data directory. Past it provd is
	// killed.
	stopWithin = time.Minute
)

// A scaleRow is what one step of the scale benchmark measured.
type scaleRow struct {
	items     int
	events    uint64        // in the log, enrollments included
	writeRate float64       // events/s over the step's POSTs
	idle      int64         // provd's anonymous RSS after the pause, bytes
	peak      int64         // the largest sampled during the step's writes
	restart   time.Duration // from the start of provd until /healthz answered 200
	p50, p99  time.Duration // of a history page
}

const scaleHeader = "   items  events in log  write events/s  RSS anon idle MB  RSS anon peak MB  restart s  page p50 ms  page p99 ms"

func (r scaleRow) String() string {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return fmt.Sprintf("%8d  %13d  %14.0f  %16.1f  %16.1f  %9.3f  %11.2f  %11.2f",
		r.items, r.events, r.writeRate, mb(r.idle), mb(r.peak), r.restart.Seconds(), ms(r.p50), ms(r.p99))
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// scaleRun is the scale benchmark: it starts provd on a fresh data
// directory, enrolls actors, and for each step grows the log to that
// many items, then reads provd's idle memory, restarts it and loads the
// history pages of items at random. It prints each step's row as it
// ends, and the whole table at the end.
func scaleRun(ctx context.Context, cfg Config, stdout io.Writer) error {
	if err := checkFresh(cfg.Data); err != nil {
		return err
	}
	p, took, err := startProvd(ctx, cfg.Provd, cfg.Data, nil)
	if err != nil {
		return err
	}
	defer func() { p.stop() }()
	fmt.Fprintf(stdout, "provd %s on %s: %s, /healthz 200 after %v\n", cfg.Provd, cfg.Data, p.url, took.Round(time.Millisecond))

	op, _, err := merkle.LoadKeyFile(filepath.Join(cfg.Data, "operator.key"))
	if err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	c, err := newClient(p.url, cfg.Concurrency, cfg.Timeout)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	a, _, err := enroll(ctx, c, op, cfg.Couriers, now)
	c.CloseIdleConnections()
	if err != nil {
		return err
	}
	// Serials are the run's tag and the item's number, so that a page
	// load finds any item from its number alone, with nothing kept.
	serials := strings.ToUpper(strings.TrimPrefix(a.prefix, "load-")) + "-"
	enrolled := uint64(1 + len(a.couriers))
	fmt.Fprintf(stdout, "enrolled  %s and %d couriers; items of 1 register + %d handoff/receive pairs, %d at a time, POSTed %d events a POST by %d workers\n",
		a.maker, len(a.couriers), cfg.Hops, cfg.Chunk, cfg.Batch, cfg.Concurrency)

	var rows []scaleRow
	have := 0
	for _, step := range cfg.Steps {
		row := scaleRow{items: step}
		s := sample(p.cmd.Process.Pid, sampleEvery)
		posted, postTime, err := grow(ctx, cfg, p.url, a, serials, have, step, now, stdout)
		peak, serr := s.stop()
		if err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		have, row.peak = step, peak
		row.writeRate = float64(posted) / postTime.Seconds()
		want := enrolled + uint64(step)*uint64(1+2*cfg.Hops)
		if row.events, err = logSize(ctx, p.url); err != nil {
			return err
		}
		if row.events != want {
			return fmt.Errorf("after %d items the log holds %d events, want %d", step, row.events, want)
		}

		if err := client.Wait(ctx, cfg.Idle); err != nil {
			return err
		}
		if row.idle, err = rssAnon(p.cmd.Process.Pid); err != nil {
			return err
		}
		inuse, goal, err := heapStats(ctx, p.url)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "idle      provd RSS anon %.1f MB; its Go heap: %.1f MB in use, next collection at %.1f MB\n", mb(row.idle), mb(inuse), mb(goal))

		t0 := time.Now()
		if err := p.stop(); err != nil {
			return err
		}
		stopped := time.Since(t0)
		q, restart, err := startProvd(ctx, cfg.Provd, cfg.Data, nil)
		if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		p, row.restart = q, restart
		fmt.Fprintf(stdout, "restart   stopped in %v; started again, /healthz 200 after %v\n", stopped.Round(time.Millisecond), row.restart.Round(time.Millisecond))
		if size, err := logSize(ctx, p.url); err != nil || size != want {
			return fmt.Errorf("after a restart the log holds %d events (%v), want %d", size, err, want)
		}

		rcfg := cfg
		rcfg.Concurrency = cfg.ReadConcurrency
		base := p.url
		pages := readLoad(ctx, rcfg, func() string {
			return provenance.ItemID{GTIN: loadGTIN, Serial: serials + strconv.Itoa(rand.IntN(step))}.DigitalLink(base)
		})
		if err := ctx.Err(); err != nil {
			return err
		}
		if pages.Failed > 0 || len(pages.Latencies) == 0 {
			return fmt.Errorf("pages of %d items: %d of %d failed (first: %v)", step, pages.Failed, pages.Failed+len(pages.Latencies), pages.FirstErr)
		}
		row.p50, row.p99 = pages.Percentile(0.50), pages.Percentile(0.99)
		after, err := rssAnon(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pages     %d of random items in %v, %d workers; provd RSS anon after them %.1f MB\n",
			len(pages.Latencies), pages.Elapsed.Round(time.Millisecond), cfg.ReadConcurrency, mb(after))
		fmt.Fprintf(stdout, "%s\n%s\n", scaleHeader, row)
		rows = append(rows, row)
	}
	fmt.Fprintf(stdout, "\n%s\n", scaleHeader)
	for _, r := range rows {
		fmt.Fprintln(stdout, r)
	}
	return nil
}

// grow signs and POSTs the chains of the items numbered from to to-1,
// cfg.Chunk items at a time, and returns how many events were accepted
// and the time spent POSTing them.
func grow(ctx context.Context, cfg Config, base string, a actors, serials string, from, to int, now time.Time, stdout io.Writer) (int, time.Duration, error) {
	c, err := newClient(base, cfg.Concurrency, cfg.Timeout)
	if err != nil {
		return 0, 0, err
	}
	defer c.CloseIdleConnections()
	post := poster(cfg.Batch)
	posted, took := 0, time.Duration(0)
	for first := from; first < to; first += cfg.Chunk {
		n := min(cfg.Chunk, to-first)
		t0 := time.Now()
		_, chains, err := presign(a, cfg.Hops, serials, first, n, now)
		if err != nil {
			return 0, 0, err
		}
		signed := time.Since(t0)
		res := post(ctx, c, chains, cfg.Concurrency)
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		if res.Failed > 0 {
			return 0, 0, fmt.Errorf("items %d to %d: %d events failed (first: %v)", first, first+n-1, res.Failed, res.FirstErr)
		}
		posted += len(res.Latencies)
		took += res.Elapsed
		own, _ := rssAnon(os.Getpid())
		fmt.Fprintf(stdout, "items %d to %d: signed %d events in %v, POSTed in %v (%.0f events/s)%s; provload RSS anon %.0f MB\n",
			first, first+n-1, n*(1+2*cfg.Hops), signed.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond),
			float64(len(res.Latencies))/res.Elapsed.Seconds(), turnedAwayNote(res.TurnedAway), mb(own))
	}
	return posted, took, nil
}

// checkFresh makes sure dir holds no data directory yet, so that the
// steps count every item in the log.
func checkFresh(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("-data: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("-data %s is not empty: -scale grows a data directory of its own from nothing", dir)
	}
	return nil
}

// logSize reads provd's checkpoint, checked against the origin and log
// key its /keys names, and returns the log's size.
func logSize(ctx context.Context, base string) (uint64, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	c, err := client.New(base, hc)
	if err != nil {
		return 0, err
	}
	trust, err := c.Keys(ctx)
	if err != nil {
		return 0, fmt.Errorf("keys: %w", err)
	}
	v, err := note.NewVerifier(trust.LogKey)
	if err != nil {
		return 0, fmt.Errorf("log key: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/checkpoint", nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("checkpoint: status %s (%v)", resp.Status, err)
	}
	cp, err := merkle.ParseCheckpoint(b, trust.Origin, v)
	if err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	return cp.Size, nil
}

// heapStats reads provd's /metrics for the bytes of Go heap in use and
// the heap size at which its next collection starts, which tell the live
// data from the collector's headroom in its RSS.
func heapStats(ctx context.Context, base string) (inuse, goal int64, err error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("metrics: status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("metrics: %w", err)
	}
	gauge := func(name string) (int64, error) {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge() == nil {
			return 0, fmt.Errorf("metrics: no gauge %s", name)
		}
		return int64(f.GetMetric()[0].GetGauge().GetValue()), nil
	}
	if inuse, err = gauge("go_memstats_heap_inuse_bytes"); err != nil {
		return 0, 0, err
	}
	if goal, err = gauge("go_memstats_next_gc_bytes"); err != nil {
		return 0, 0, err
	}
	return inuse, goal, nil
}

// rssAnon returns the anonymous resident memory of process pid (heap,
// stacks: not the file pages of the mapped database), as
// /proc/PID/status says.
func rssAnon(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return n << 10, nil
				}
			}
			return 0, fmt.Errorf("memory of process %d: RssAnon %q", pid, strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("memory of process %d: no RssAnon in /proc/%d/status", pid, pid)
}

// A sampler reads a process's anonymous RSS at intervals and keeps the
// largest.
type sampler struct {
	quit chan struct{}
	done chan struct{}
	peak int64
	err  error
}

// sample reads pid's anonymous RSS now and every interval until stop.
func sample(pid int, every time.Duration) *sampler {
	s := &sampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n, err := rssAnon(pid)
			if err != nil {
				s.err = err
				return
			}
			s.peak = max(s.peak, n)
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the largest RSS read.
func (s *sampler) stop() (int64, error) {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
	return s.peak, s.err
}

// A child is a provd that provload started.
type child struct {
	cmd  *exec.Cmd
	url  string
	out  *outputTail
	done chan struct{} // closed once the process exited
	err  error         // what Wait returned, once done is closed
}

// startProvd starts the provd binary bin on the data directory dir, on a
// free loopback port, with the flags args, and waits until /healthz
// answers 200. It returns how long that took from the start of the
// process. provd's output goes to logTo too, unless it is nil.
func startProvd(ctx context.Context, bin, dir string, logTo io.Writer, args ...string) (*child, time.Duration, error) {
	out := &outputTail{listening: make(chan string, 1)}
	cmd := exec.Command(bin, append([]string{"--data", dir, "--addr", "127.0.0.1:0", "--log-format", "text"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if logTo != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(out, logTo), io.MultiWriter(out, logTo)
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start provd: %w", err)
	}
	p := &child{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	fail := func(err error) (*child, time.Duration, error) {
		p.stop()
		return nil, 0, fmt.Errorf("%w; provd's output ends:\n%s", err, out)
	}
	deadline := time.NewTimer(startWithin)
	defer deadline.Stop()
	select {
	case p.url = <-out.listening:
	case <-p.done:
		return fail(fmt.Errorf("provd exited before it listened: %v", p.err))
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-deadline.C:
		return fail(fmt.Errorf("provd did not listen within %v", startWithin))
	}
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	for {
		if healthy(ctx, hc, p.url) {
			return p, time.Since(t0), nil
		}
		select {
		case <-p.done:
			return fail(fmt.Errorf("provd exited before /healthz answered 200: %v", p.err))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-deadline.C:
			return fail(fmt.Errorf("provd's /healthz did not answer 200 within %v", startWithin))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// healthy says whether base's /healthz answers 200.
func healthy(ctx context.Context, hc *http.Client, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop sends provd SIGINT and waits until it exited, killing it if it
// takes longer than stopWithin. It returns an error if provd did not exit
// cleanly; once stopped, stop returns nil.
func (p *child) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("stop provd: %w", err)
	}
	t := time.NewTimer(stopWithin)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("provd did not stop within %v of SIGINT, killed; its output ends:\n%s", stopWithin, p.out)
	}
	if p.err != nil {
		return fmt.Errorf("provd stopped with %v; its output ends:\n%s", p.err, p.out)
	}
	return nil
}

// An outputTail keeps the end of provd's output, for errors, and hands
// on the URL of its "provd listening on" line.
type outputTail struct {
	mu        sync.Mutex
	buf       []byte
	heard     bool
	listening chan string // receives the URL once
}

// tailSize bounds what an outputTail keeps.
const tailSize = 8 << 10

var listeningLine = regexp.MustCompile(`provd listening on (http://\S+)\n`)

func (o *outputTail) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, b...)
	if !o.heard {
		if m := listeningLine.FindSubmatch(o.buf); m != nil {
			o.heard = true
			o.listening <- string(m[1])
		}
	}
	if len(o.buf) > 2*tailSize {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-tailSize:]...)
	}
	return len(b), nil
}

func (o *outputTail) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(bytes.TrimRight(o.buf, "\n"))
}
