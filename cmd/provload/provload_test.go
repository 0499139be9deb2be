package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
)

func TestRun(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/01/09506000134352/21/ABC" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		w.Write([]byte("<html>page</html>"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(t.Context(), []string{"-url", srv.URL, "-item", "/01/09506000134352/21/ABC", "-concurrency", "3", "-duration", "200ms"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	for _, want := range []string{"3 workers", "0 failed", "requests/s", "p50 ", "p99 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, &out)
		}
	}
	if hits.Load() == 0 {
		t.Error("the server saw no request")
	}

	// -read-rate paces the workers: 20 loads a second for half a second is
	// about 10, however fast the server answers.
	hits.Store(0)
	out.Reset()
	err = run(t.Context(), []string{"-url", srv.URL, "-item", "/01/09506000134352/21/ABC", "-concurrency", "3", "-duration", "500ms", "-read-rate", "20"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	if n := hits.Load(); n < 5 || n > 15 {
		t.Errorf("-read-rate 20 for 500ms made %d requests, want about 10", n)
	}

	out.Reset()
	err = run(t.Context(), []string{"-url", srv.URL, "-item", "/01/09506000134352/21/NOPE", "-duration", "50ms"}, &out)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("run on a missing page: err = %v, want one naming the 404\n%s", err, &out)
	}
}

func TestValidate(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:8080", Item: "/01/09506000134352/21/ABC", Concurrency: 1, Duration: time.Second, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, change := range map[string]func(*Config){
		"no item":            func(c *Config) { c.Item = "" },
		"relative item":      func(c *Config) { c.Item = "01/x" },
		"bad url":            func(c *Config) { c.URL = "127.0.0.1:8080" },
		"zero concurrency":   func(c *Config) { c.Concurrency = 0 },
		"zero duration":      func(c *Config) { c.Duration = 0 },
		"read without write": func(c *Config) { c.Read = true },
		"write without key":  func(c *Config) { c.Write, c.Items, c.Hops, c.Couriers = true, 1, 1, 2 },
		"one courier":        func(c *Config) { c.Write, c.OperatorKey, c.Items, c.Hops, c.Couriers = true, "k", 1, 1, 1 },
		"negative read rate": func(c *Config) { c.ReadRate = -1 },
		"zero batch":         func(c *Config) { c.Write, c.OperatorKey, c.Items, c.Hops, c.Couriers, c.Batch = true, "k", 1, 1, 2, 0 },
		"batch over the max": func(c *Config) {
			c.Write, c.OperatorKey, c.Items, c.Hops, c.Couriers, c.Batch = true, "k", 1, 1, 2, 1001
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			change(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("Validate(%+v) = nil, want an error", c)
			}
		})
	}
}

// TestScaleConfig checks -scale's own defaults, and that it refuses the
// flags it has no use for and steps that do not grow.
func TestScaleConfig(t *testing.T) {
	cfg, err := parseConfig([]string{"-scale", "-provd", "provd", "-data", "d"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Hops != 1 || cfg.Batch != 32 || cfg.Concurrency != 16 || cfg.ReadRate != 200 || !slices.Equal(cfg.Steps, []int{500000, 1000000, 2000000}) {
		t.Errorf("-scale defaults: hops %d, batch %d, concurrency %d, read rate %v, steps %v", cfg.Hops, cfg.Batch, cfg.Concurrency, cfg.ReadRate, cfg.Steps)
	}
	cfg, err = parseConfig([]string{"-scale", "-provd", "provd", "-data", "d", "-hops", "3", "-batch", "1", "-steps", "10, 20"}, io.Discard)
	if err != nil || cfg.Hops != 3 || cfg.Batch != 1 || !slices.Equal(cfg.Steps, []int{10, 20}) {
		t.Errorf("-scale with flags given: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"-scale", "-provd", "p", "-data", "d", "-url", "http://127.0.0.1:1"},
		{"-scale", "-provd", "p", "-data", "d", "-write"},
		{"-scale", "-provd", "p", "-data", "d", "-items", "5"},
		{"-scale", "-provd", "p", "-data", "d", "-steps", "10,x"},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("parseConfig(%q) = nil error", args)
		}
	}
	for name, args := range map[string][]string{
		"no provd":         {"-scale", "-data", "d"},
		"no data":          {"-scale", "-provd", "p"},
		"steps not rising": {"-scale", "-provd", "p", "-data", "d", "-steps", "20,10"},
		"zero step":        {"-scale", "-provd", "p", "-data", "d", "-steps", "0,10"},
		"zero chunk":       {"-scale", "-provd", "p", "-data", "d", "-chunk", "0"},
		"no read rate":     {"-scale", "-provd", "p", "-data", "d", "-read-rate", "0"},
	} {
		cfg, err := parseConfig(args, io.Discard)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			t.Errorf("%s: %q is valid, want an error", name, args)
		}
	}
}

func TestPercentile(t *testing.T) {
	r := Result{}
	for i := 1; i <= 100; i++ {
		r.Latencies = append(r.Latencies, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 51 * time.Millisecond}, {0.99, 100 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := r.Percentile(tc.p); got != tc.want {
			t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// A loadTarget is a real provd handler on a fresh data directory, served
// by httptest: what provload -write runs against in these tests.
type loadTarget struct {
	dir  string // the data directory, for -data
	node *datadir.Node
	url  string
}

// newLoadTarget serves a fresh data directory, its Service wrapped by
// wrap if not nil, with the write limits given.
func newLoadTarget(t *testing.T, wrap func(web.Service) web.Service, writes web.WriteLimits) loadTarget {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	node, err := datadir.Open(t.Context(), datadir.Config{Dir: dir, Logger: logger, PollInterval: time.Second, Log: datadir.LogConfig{Backend: "bolt"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	var svc web.Service = node.Service
	if wrap != nil {
		svc = wrap(svc)
	}
	h, err := web.New(web.Config{Service: svc, Log: node.Log, BaseURL: "http://example.com", Logger: logger, Writes: writes})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return loadTarget{dir: dir, node: node, url: srv.URL}
}

// TestWrite runs the write load, with pages read alongside, against a real
// provd handler on a fresh data directory, and checks the log holds every
// event.
func TestWrite(t *testing.T) {
	lt := newLoadTarget(t, nil, web.WriteLimits{})
	dir, node, srv := lt.dir, lt.node, lt.url
	var out bytes.Buffer
	err := run(t.Context(), []string{"-url", srv, "-write", "-data", dir, "-items", "20", "-hops", "3", "-couriers", "3",
		"-concurrency", "4", "-duration", "30s", "-read", "-read-concurrency", "2"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	t.Log(out.String())
	for _, want := range []string{"enrolled  ", "signed    140 events ahead", "register  20 items", "events    120 ok, 0 failed", "all chains done", "events/s", "page views/s", "page lat  p50 "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, &out)
		}
	}
	// 4 enrollments, 20 registrations, 120 chain events.
	if cp, err := node.Log.Checkpoint(t.Context()); err != nil || cp.Size != 4+20+120 {
		t.Errorf("log size %d (%v), want %d", cp.Size, err, 4+20+120)
	}

	err = run(t.Context(), []string{"-url", srv, "-write", "-operator-key", filepath.Join(t.TempDir(), "none.key")}, &out)
	if err == nil || !strings.Contains(err.Error(), "operator key") {
		t.Errorf("run without a key file: err = %v", err)
	}
}

// TestWriteBatch runs the write load in batches, with pages read
// alongside, and checks the log holds every event.
func TestWriteBatch(t *testing.T) {
	lt := newLoadTarget(t, nil, web.WriteLimits{})
	dir, node, srv := lt.dir, lt.node, lt.url
	var out bytes.Buffer
	// 25 items in batches of 8: the last worker's batch is short.
	err := run(t.Context(), []string{"-url", srv, "-write", "-data", dir, "-items", "25", "-hops", "2", "-couriers", "3",
		"-concurrency", "2", "-batch", "8", "-duration", "30s", "-read", "-read-concurrency", "1"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	t.Log(out.String())
	for _, want := range []string{"/api/v1/events/batch: 25 items", "2 workers (up to 8 items' events a POST)", "events    100 ok, 0 failed", "all chains done", "page views/s"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q:\n%s", want, &out)
		}
	}
	// 4 enrollments, 25 registrations, 100 chain events.
	if cp, err := node.Log.Checkpoint(t.Context()); err != nil || cp.Size != 4+25+100 {
		t.Errorf("log size %d (%v), want %d", cp.Size, err, 4+25+100)
	}
}

// slowService delays each Submit, so that writes pile up.
type slowService struct {
	web.Service
	delay time.Duration
}

func (s slowService) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	time.Sleep(s.delay)
	return s.Service.Submit(ctx, leaf)
}

// SubmitBatch holds each event's write slot for the delay.
func (s slowService) SubmitBatch(ctx context.Context, leaves [][]byte, workers int, admit func(context.Context) (func(), error)) []provenance.BatchResult {
	slow := func(ctx context.Context) (func(), error) {
		release, err := admit(ctx)
		if err == nil {
			time.Sleep(s.delay)
		}
		return release, err
	}
	return s.Service.SubmitBatch(ctx, leaves, workers, slow)
}

// TestWriteTurnedAway runs the write load against a provd handler with one
// write slot and a slow disk: writes turned away (503 with Retry-After)
// are counted apart, not as failures, and sent again, so every event is
// logged and provload succeeds.
func TestWriteTurnedAway(t *testing.T) {
	for _, batch := range []string{"1", "3"} {
		t.Run("batch "+batch, func(t *testing.T) {
			lt := newLoadTarget(t, func(s web.Service) web.Service { return slowService{s, 50 * time.Millisecond} },
				web.WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: time.Millisecond})
			dir, node, srv := lt.dir, lt.node, lt.url
			var out bytes.Buffer
			err := run(t.Context(), []string{"-url", srv, "-write", "-data", dir, "-items", "3", "-hops", "1", "-couriers", "2",
				"-concurrency", "3", "-duration", "60s", "-batch", batch}, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, &out)
			}
			t.Log(out.String())
			m := regexp.MustCompile(`register  3 items in .*, 0 failed, turned away (\d+) times \(429/503, sent again\)`).FindStringSubmatch(out.String())
			if m == nil || m[1] == "0" {
				t.Errorf("output does not count registrations turned away:\n%s", &out)
			}
			for _, want := range []string{"events    6 ok, 0 failed, ", "all chains done"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output does not say %q:\n%s", want, &out)
				}
			}
			// 3 enrollments, 3 registrations, 6 chain events: none lost.
			if cp, err := node.Log.Checkpoint(t.Context()); err != nil || cp.Size != 3+3+6 {
				t.Errorf("log size %d (%v), want %d", cp.Size, err, 3+3+6)
			}
		})
	}
}

// TestScale runs the scale benchmark end to end, with tiny steps, against
// a provd built from this tree, and checks every row of its table.
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds provd and runs it as a child process: not with -short")
	}
	provd := buildProvd(t)
	data := filepath.Join(t.TempDir(), "data")
	var out bytes.Buffer
	// Chunks of 150 items: the first step is two chunks, the second
	// starts within a step's worth.
	err := run(t.Context(), []string{"-scale", "-provd", provd, "-data", data, "-steps", "200,400", "-chunk", "150",
		"-couriers", "2", "-batch", "8", "-concurrency", "4", "-duration", "500ms", "-read-rate", "100", "-read-concurrency", "2", "-idle", "100ms"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	t.Log(out.String())
	// The table at the end: the header, then one row a step.
	_, table, ok := strings.Cut(out.String(), "\n\n"+scaleHeader+"\n")
	if !ok {
		t.Fatalf("output ends with no table:\n%s", &out)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 {
		t.Fatalf("table has %d rows, want 2:\n%s", len(lines), table)
	}
	for i, items := range []int{200, 400} {
		f := strings.Fields(lines[i])
		if len(f) != 8 {
			t.Fatalf("row %q has %d fields, want 8", lines[i], len(f))
		}
		var v [8]float64
		for j := range f {
			if v[j], err = strconv.ParseFloat(f[j], 64); err != nil {
				t.Fatalf("row %q, field %d: %v", lines[i], j, err)
			}
		}
		// 3 enrollments, then a register, a handoff and a receive an item.
		if v[0] != float64(items) || v[1] != float64(3+3*items) {
			t.Errorf("row %q: want %d items and %d events in the log", lines[i], items, 3+3*items)
		}
		idle, peak, restart, p50, p99 := v[3], v[4], v[5], v[6], v[7]
		switch {
		case v[2] <= 0:
			t.Errorf("row %q: no write rate", lines[i])
		case idle <= 0 || peak <= 0 || idle > 4096 || peak > 4096:
			t.Errorf("row %q: RSS idle %v MB, peak %v MB: want each in (0, 4096]", lines[i], idle, peak)
		case restart <= 0 || restart > 60:
			t.Errorf("row %q: restart %v s", lines[i], restart)
		case p50 <= 0 || p99 < p50 || p99 > 5000:
			t.Errorf("row %q: page p50 %v ms, p99 %v ms", lines[i], p50, p99)
		}
	}

	// The data directory is provd's now: a second run refuses it.
	err = run(t.Context(), []string{"-scale", "-provd", provd, "-data", data, "-steps", "10"}, &out)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("run on a used data directory: err = %v, want one saying it is not empty", err)
	}
}

// buildProvd builds provd from this tree into a temporary directory and
// returns its path.
func buildProvd(t *testing.T) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build provd with: %v", err)
	}
	provd := filepath.Join(t.TempDir(), "provd")
	build := exec.CommandContext(t.Context(), gobin, "build", "-o", provd, "github.com/provtrail/provtrail/cmd/provd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build provd: %v\n%s", err, out)
	}
	return provd
}

// TestScaleTrillian runs the scale benchmark on Trillian end to end, with
// tiny steps: MariaDB, Trillian and two replicas of a provd built from
// this tree. It checks every row of its table. Without MariaDB or
// Trillian it skips, saying what to install; with CI set it fails.
func TestScaleTrillian(t *testing.T) {
	if testing.Short() {
		t.Skip("builds provd and runs MariaDB, Trillian and provd replicas: not with -short")
	}
	if missing := trilliantest.Missing(); missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; CI is set, so this fails instead of skipping: %s", missing, trilliantest.InstallHint())
		}
		t.Skipf("%s: %s", missing, trilliantest.InstallHint())
	}
	provd := buildProvd(t)
	var out bytes.Buffer
	// 150 items a step: 100 queued in bulk, 50 POSTed.
	err := run(t.Context(), []string{"-scale", "-trillian", "-provd", provd, "-data", filepath.Join(t.TempDir(), "data"),
		"-steps", "150,300", "-posted", "50", "-chunk", "60", "-couriers", "2", "-batch", "8", "-concurrency", "4",
		"-duration", "500ms", "-read-rate", "50", "-read-concurrency", "2", "-idle", "100ms", "-buffer-pool", "64M"}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	t.Log(out.String())
	_, table, ok := strings.Cut(out.String(), "\n\n"+trillianHeader+"\n")
	if !ok {
		t.Fatalf("output ends with no table:\n%s", &out)
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 {
		t.Fatalf("table has %d rows, want 2:\n%s", len(lines), table)
	}
	for i, items := range []int{150, 300} {
		// The A/B columns are two figures apart by " / ".
		f := slices.DeleteFunc(strings.Fields(lines[i]), func(s string) bool { return s == "/" })
		if len(f) != 18 {
			t.Fatalf("row %q has %d figures, want 18", lines[i], len(f))
		}
		var v [18]float64
		for j := range f {
			if v[j], err = strconv.ParseFloat(f[j], 64); err != nil {
				t.Fatalf("row %q, figure %d: %v", lines[i], j, err)
			}
		}
		if v[0] != float64(items) || v[1] != float64(3+3*items) {
			t.Errorf("row %q: want %d items and %d events in the log", lines[i], items, 3+3*items)
		}
		bulk, writes, idle, peak, p50, p99 := v[2], v[3:5], v[5:7], v[7:9], v[9:11], v[11:13]
		first, indexRows, indexMB, logRows, logMB := v[13], v[14], v[15], v[16], v[17]
		for r := range 2 {
			switch {
			case writes[r] <= 0:
				t.Errorf("row %q, replica %d: no write rate", lines[i], r)
			case idle[r] <= 0 || peak[r] <= 0 || idle[r] > 4096 || peak[r] > 4096:
				t.Errorf("row %q, replica %d: RSS idle %v MB, peak %v MB: want each in (0, 4096]", lines[i], r, idle[r], peak[r])
			case p50[r] <= 0 || p99[r] < p50[r] || p99[r] > 5000:
				t.Errorf("row %q, replica %d: page p50 %v ms, p99 %v ms", lines[i], r, p50[r], p99[r])
			}
		}
		switch {
		case bulk <= 0:
			t.Errorf("row %q: no bulk rate", lines[i])
		case first <= 0 || first > 60:
			t.Errorf("row %q: a third replica's first page after %v s", lines[i], first)
		case indexRows <= 0 || indexMB <= 0 || logRows <= 0 || logMB <= 0:
			t.Errorf("row %q: the database's tables: index %v rows %v MB, Trillian %v rows %v MB", lines[i], indexRows, indexMB, logRows, logMB)
		}
	}
}
