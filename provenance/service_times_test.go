package provenance_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// A testClock is a Service's clock a test sets.
type testClock struct{ t atomic.Pointer[time.Time] }

func (c *testClock) set(t time.Time) { c.t.Store(&t) }
func (c *testClock) now() time.Time  { return *c.t.Load() }

// signAt signs e at time at (the world's clock moves on from there).
func (w *world) signAt(at time.Time, sign func() []byte) []byte {
	w.clock = at.Add(-time.Minute) // sign adds a minute
	return sign()
}

// TestServiceTimeRules submits events with times the rules refuse, and
// their legal neighbours a second away: each refusal is a *RuleError
// around a *TimeError of its rule, names no log position, and appends
// nothing.
func TestServiceTimeRules(t *testing.T) {
	clock := new(testClock)
	now := time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC)
	clock.set(now)
	w := newWorld(t)
	w.close()
	w.now = clock.now
	w.open()

	enrolled := now.Add(-time.Hour)
	w.ok(w.signAt(enrolled, func() []byte { return w.enroll("acme", provenance.RoleManufacturer) }))
	w.ok(w.signAt(enrolled, func() []byte { return w.enroll("swift", provenance.RoleCourier) }))
	item, other := w.newItem(), w.newItem()
	registered := now.Add(-time.Minute)
	w.ok(w.signAt(registered, func() []byte { return w.register("acme", item) }))

	at := func(t time.Time, sign func() []byte) func() []byte {
		return func() []byte { return w.signAt(t, sign) }
	}
	for _, tc := range []struct {
		name string
		leaf func() []byte // signed when its case runs, after the cases before it
		want error         // nil: accepted
	}{
		{"register a second before the enrollment",
			at(enrolled.Add(-time.Second), func() []byte { return w.register("acme", other) }), provenance.ErrTimeBeforeEnrollment},
		{"handoff a second before the register",
			at(registered.Add(-time.Second), func() []byte { return w.handoff("acme", item, provenance.Handoff{To: "swift"}) }), provenance.ErrTimeBeforePrevious},
		{"handoff past the clock's skew",
			at(now.Add(provenance.MaxClockSkew+time.Second), func() []byte { return w.handoff("acme", item, provenance.Handoff{To: "swift"}) }), provenance.ErrTimeInFuture},
		{"register a year ahead",
			at(now.AddDate(1, 0, 0), func() []byte { return w.register("acme", other) }), provenance.ErrTimeInFuture},
		{"register at the enrollment", at(enrolled, func() []byte { return w.register("acme", other) }), nil},
		// At the very edge of the skew: accepted, and from then on the
		// item's next event may not be earlier.
		{"handoff at the clock's skew",
			at(now.Add(provenance.MaxClockSkew), func() []byte { return w.handoff("acme", item, provenance.Handoff{To: "swift"}) }), nil},
		{"receive at the server's time, before the handoff",
			at(now, func() []byte { return w.receive("swift", item) }), provenance.ErrTimeBeforePrevious},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.size()
			_, err := w.svc.Submit(t.Context(), tc.leaf())
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *provenance.RuleError
			var te *provenance.TimeError
			if !errors.As(err, &re) || !re.NotLogged || !errors.As(err, &te) || te.Rule != tc.want {
				t.Fatalf("got %v, want a RuleError, not logged, around a TimeError of %v", err, tc.want)
			}
			if provenance.CodeError(provenance.ErrorCode(err)) != tc.want {
				t.Errorf("error code %q", provenance.ErrorCode(err))
			}
			t.Logf("%v", err)
			if after := w.size(); after != before {
				t.Fatalf("log grew from %d to %d", before, after)
			}
		})
	}

	// The clock catches up: the receive may come now.
	clock.set(now.Add(provenance.MaxClockSkew))
	w.ok(w.signAt(now.Add(provenance.MaxClockSkew), func() []byte { return w.receive("swift", item) }))
}

// TestReplayAcceptsEventsAheadOfItsClock checks replay determinism at the
// skew's edge: an event accepted MaxClockSkew ahead of the submitting
// server's clock is applied again by a rebuild whose clock is far behind
// it (another replica, or a restart after the clock was set back), and
// the rebuilt index equals the live one.
func TestReplayAcceptsEventsAheadOfItsClock(t *testing.T) {
	clock := new(testClock)
	now := time.Date(2026, 5, 2, 12, 0, 0, 0, time.UTC)
	clock.set(now)
	w := newWorld(t)
	w.close()
	w.now = clock.now
	w.open()

	edge := now.Add(provenance.MaxClockSkew)
	w.ok(w.signAt(now, func() []byte { return w.enroll("acme", provenance.RoleManufacturer) }))
	w.ok(w.signAt(now, func() []byte { return w.enroll("swift", provenance.RoleCourier) }))
	item := w.newItem()
	w.ok(w.signAt(edge, func() []byte { return w.register("acme", item) }))
	w.ok(w.signAt(edge, func() []byte { return w.handoff("acme", item, provenance.Handoff{To: "swift"}) }))
	w.close()
	w.open()
	live := dumpIndex(t, w.store)
	w.svc.Close()

	clock.set(now.Add(-24 * time.Hour))
	if err := provenance.Rebuild(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dumpIndex(t, w.store); rebuilt != live {
		t.Fatalf("rebuilt index differs from the live one:\nlive    %.600s\nrebuilt %.600s", live, rebuilt)
	}
	if refused, err := w.store.Refused(t.Context(), 0, w.size()); err != nil || len(refused) != 0 {
		t.Fatalf("the rebuild refused %v (%v)", refused, err)
	}
	var err error
	if w.svc, err = provenance.NewService(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	v, err := w.svc.Item(t.Context(), item)
	if err != nil || v.State.Status != provenance.StatusInTransit || !v.State.LastTime.Equal(edge) {
		t.Fatalf("item after the rebuild: %+v, %v", v.State, err)
	}
}
