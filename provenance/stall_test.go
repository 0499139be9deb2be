package provenance_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/provenance"
)

// A stallLog is the embedded log whose reads of leaves can be made to fail
// or to hang, as a remote log's (Trillian's) do when its server is in
// trouble. Appends, checkpoints and proofs work throughout.
type stallLog struct {
	*boltlog.Log
	mu      sync.Mutex
	mode    string        // "", "fail" or "hang"
	release chan struct{} // closed when reads stop hanging
}

var errReadsDown = errors.New("log reads are down")

func (l *stallLog) set(mode string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mode == "hang" {
		close(l.release)
	}
	l.mode = mode
	if mode == "hang" {
		l.release = make(chan struct{})
	}
}

func (l *stallLog) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	l.mu.Lock()
	mode, release := l.mode, l.release
	l.mu.Unlock()
	switch mode {
	case "fail":
		return nil, errReadsDown
	case "hang":
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-release:
		}
	}
	return l.Log.Leaves(ctx, start, end)
}

// TestServiceLiveWhenLogReadsStall checks that no log read happens while
// the Service holds the lock its applier and every check need: a retried
// enrollment is recognized without reading the log; while reads fail or
// hang, submissions and page reads end with an error when their context
// ends, other reads of the index answer, Close returns, and once reads
// work again everything submitted meanwhile is applied.
func TestServiceLiveWhenLogReadsStall(t *testing.T) {
	w := newWorld(t)
	if err := w.svc.Close(); err != nil {
		t.Fatal(err)
	}
	stall := &stallLog{Log: w.log}
	cfg := w.config()
	cfg.Log = stall
	svc, err := provenance.NewService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.svc = svc

	enroll := w.enroll("swift", provenance.RoleCourier)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	first := w.ok(enroll)
	item := w.newItem()
	w.ok(w.register("acme", item))
	handoff := w.handoff("acme", item, provenance.Handoff{To: "swift"})
	unseen := w.newItem() // its page was never built, so never cached
	w.ok(w.register("acme", unseen))

	within := func(what string, d time.Duration, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(d):
			t.Fatalf("%s: still waiting after %v", what, d)
		}
	}

	for _, mode := range []string{"fail", "hang"} {
		stall.set(mode)
		within(mode+": retried enrollment", 5*time.Second, func() {
			r, err := svc.Submit(t.Context(), enroll)
			if err != nil || !r.Duplicate || r.Index != first.Index {
				t.Errorf("%s: retried enrollment: receipt %+v, %v; want the first one's index %d, marked duplicate", mode, r, err, first.Index)
			}
		})
		within(mode+": actor", 5*time.Second, func() {
			if _, err := svc.Actor(t.Context(), "swift"); err != nil {
				t.Errorf("%s: actor: %v", mode, err)
			}
		})
		within(mode+": item page", 5*time.Second, func() {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			if _, err := svc.Item(ctx, unseen); err == nil {
				t.Errorf("%s: the item's history was built with no leaf read", mode)
			}
		})
	}

	// While reads hang, a new event is appended but cannot be applied:
	// its submitter hears an error when its context ends.
	within("handoff while reads hang", 5*time.Second, func() {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		if _, err := svc.Submit(ctx, handoff); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("handoff while reads hang: %v, want the context's deadline", err)
		}
	})
	appended := w.size()
	stall.set("")
	within("retried handoff once reads work", 10*time.Second, func() {
		r, err := svc.Submit(t.Context(), handoff)
		if err != nil || r.Index != appended-1 || w.size() != appended {
			t.Errorf("retried handoff: index %d, %v, log size %d; want the appended one, index %d, and nothing appended", r.Index, err, w.size(), appended-1)
		}
	})
	v, err := svc.Item(t.Context(), item)
	if err != nil || v.State.Status != provenance.StatusInTransit {
		t.Fatalf("item after reads came back: %+v, %v; want in transit", v.State, err)
	}

	// Close does not wait for the applier's read that hangs.
	stall.set("hang")
	within("receive while reads hang", 5*time.Second, func() {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		if _, err := svc.Submit(ctx, w.receive("swift", item)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("receive while reads hang: %v, want the context's deadline", err)
		}
	})
	within("close while reads hang", 5*time.Second, func() {
		if err := svc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	stall.set("")
}
