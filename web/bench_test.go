//go:build unix

package web_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/web"
	"golang.org/x/mod/sumdb/note"
)

// bigLogLeaves is the number of filler leaves in the log the history page
// benchmark runs on, before the events of the measured item.
const bigLogLeaves = 1_000_000

// bigLog is the benchmark fixture: a log of bigLogLeaves filler leaves and
// then a few actors and an item with 10 events, behind a web.Server. It is
// built once per test binary run, on the first benchmark that asks, so
// that `go test ./web` without -bench never builds it.
var bigLog struct {
	once   sync.Once
	env    *env
	path   string        // the item's history page
	filler atomic.Uint64 // number of the next filler leaf
}

// fillerLeaf is filler leaf number i: 400 bytes, distinct for each i, and
// not an event, so the Service refuses it on replay (the page of an item
// costs the same whatever the other leaves are; only their number matters
// for proofs).
func fillerLeaf(i uint64) []byte {
	leaf := fmt.Appendf(make([]byte, 0, 400), "filler %d\n", i)
	for len(leaf) < 400 {
		leaf = append(leaf, 'x')
	}
	return leaf
}

// bigEnv returns the fixture, building it on first use (about 30 s).
func bigEnv(b *testing.B) (*env, string) {
	b.Helper()
	bigLog.once.Do(func() { buildBigLog(b) })
	if bigLog.env == nil {
		b.Fatal("the 1M-entry fixture failed to build (see the first benchmark's log)")
	}
	return bigLog.env, bigLog.path
}

func buildBigLog(b *testing.B) {
	start := time.Now()
	ctx := context.Background()
	const origin = "id.example.com/log"
	logSigner, logKey := newSigner(b, origin)
	op, opKey := newSigner(b, provenance.OperatorID)
	dir, err := os.MkdirTemp("", "provtrail-web-bench-")
	if err != nil {
		b.Fatal(err)
	}
	db, err := boltlog.OpenDB(filepath.Join(dir, "provtrail.db"))
	if err != nil {
		b.Fatal(err)
	}
	// The fixture lives as long as the test binary, which has no hook to
	// remove it after the last benchmark: unlink the file now (the open
	// database keeps it), so the disk space returns when the process ends.
	// Where a file cannot be removed while open, the directory stays.
	_ = os.RemoveAll(dir)
	l, err := boltlog.Open(ctx, boltlog.Config{DB: db, Origin: origin, Signer: logSigner})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 4096
	for i := uint64(0); i < bigLogLeaves; i += batch {
		leaves := make([][]byte, min(batch, bigLogLeaves-i))
		for j := range leaves {
			leaves[j] = fillerLeaf(i + uint64(j))
		}
		if _, err := l.Append(ctx, leaves); err != nil {
			b.Fatal(err)
		}
	}
	bigLog.filler.Store(bigLogLeaves)
	filled := time.Since(start)
	store, err := boltstore.Open(db)
	if err != nil {
		b.Fatal(err)
	}
	svc, err := provenance.NewService(ctx, provenance.ServiceConfig{Log: l, Store: store,
		Trust: provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}})
	if err != nil {
		b.Fatal(err)
	}
	s, err := web.New(web.Config{Service: svc, Log: l, Scans: &memScans{}, BaseURL: baseURL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	e := &env{t: b, node: &node{Log: l, Service: svc, Operator: op}, server: s, srv: httptest.NewServer(s),
		keys: map[string]note.Signer{}, time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	id := mustItem(b, gtin, "BENCH1")
	tenEvents(e, id)
	e.srv.Close()
	b.Logf("fixture: %d filler leaves in %v, replayed and 10 events in %v; log size %d",
		bigLogLeaves, filled.Round(time.Millisecond), (time.Since(start) - filled).Round(time.Millisecond), e.checkpointSize())
	e.t = nil // the B that built it ends; nothing may report through it
	bigLog.env, bigLog.path = e, id.DigitalLink("")
}

// tenEvents gives id 10 events: register, then handoffs and receives
// between three actors.
func tenEvents(e *env, id provenance.ItemID) {
	scenario(e, id, "Bag") // 3 events
	e.enroll("courier2", provenance.RoleCourier, "Second Courier")
	for i := 0; i < 3; i++ { // 6 more
		from, to := "courier", "courier2"
		if i%2 == 1 {
			from, to = to, from
		}
		e.ok(e.handoffLeaf(from, id, provenance.Handoff{To: to}))
		e.ok(e.receiveLeaf(to, id, "Guangzhou"))
	}
	e.ok(e.handoffLeaf("courier2", id, provenance.Handoff{To: "courier"})) // the 10th
}

// cpuTime returns the CPU time this process has used, GC and every
// goroutine included: CPU per page, unlike pages/s, does not drop when
// other processes take the machine's cores (a page rate of 3,000/s on 2
// cores is at most 667 CPU-µs a page).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHistoryPage renders the history page of an item with 10 events
// on a log of 1M entries through the real handler (gin, the Service, the
// bbolt log, templ), from parallel goroutines, and reports pages per second,
// the p50 and p99 latency of one page, and the CPU time per page.
//
// "static": nothing else writes, so the checkpoint stays put. "growing":
// a writer appends one leaf to the log every 10 ms, so the checkpoint
// moves 100 times a second while pages are served.
//
//	go test ./web -run XXX -bench BenchmarkHistoryPage -count 5
func BenchmarkHistoryPage(b *testing.B) {
	e, path := bigEnv(b)
	b.Run("static", func(b *testing.B) { benchPage(b, e, path, 0) })
	b.Run("growing", func(b *testing.B) { benchPage(b, e, path, 10*time.Millisecond) })
}

func benchPage(b *testing.B, e *env, path string, appendEvery time.Duration) {
	if appendEvery > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(appendEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				leaf := fillerLeaf(bigLog.filler.Add(1))
				if _, err := e.node.Log.Append(ctx, [][]byte{leaf}); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		})
		defer wg.Wait()
		defer cancel()
	}
	var mu sync.Mutex
	var all []time.Duration
	cpu0 := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var took []time.Duration
		for pb.Next() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodGet, path, nil)
			start := time.Now()
			e.server.ServeHTTP(w, r)
			took = append(took, time.Since(start))
			if w.Code != http.StatusOK {
				b.Errorf("status %d", w.Code)
				return
			}
		}
		mu.Lock()
		all = append(all, took...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/page")
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
