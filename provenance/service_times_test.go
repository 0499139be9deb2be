package provenance_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
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
	receive := w.signAt(now.Add(2*provenance.MaxClockSkew), func() []byte { return w.receive("swift", item) })
	first := w.ok(receive)
	// A retry of it is a duplicate even where the clock is behind it (a
	// replica whose clock is slow, a clock set back): nothing is appended.
	clock.set(now.Add(-time.Hour))
	before := w.size()
	r, err := w.svc.Submit(t.Context(), receive)
	if err != nil || !r.Duplicate || r.Index != first.Index || w.size() != before {
		t.Fatalf("retry with the clock an hour behind: %+v, %v; want a duplicate of %d", r, err, first.Index)
	}
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

// signText signs e, whose fields hold "PLACEHOLDER", with the placeholder
// replaced by text and the JSON kept canonical, as a signer that skips
// Sign's checks would.
func signText(t testing.TB, e provenance.Event, kp keyPair, text string) []byte {
	t.Helper()
	leaf, err := provenance.Sign(e, kp.signer)
	if err != nil {
		t.Fatal(err)
	}
	q, err := json.Marshal(text) // escapes <, > and & too, which the fields below do not hold
	if err != nil {
		t.Fatal(err)
	}
	body := string(leaf[:bytes.LastIndex(leaf, []byte("\n\n"))+1])
	body = strings.Replace(body, "PLACEHOLDER", string(q[1:len(q)-1]), 1)
	out, err := note.Sign(&note.Note{Text: body}, kp.signer)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestServiceTextRules submits events whose free text holds a bidi
// override, a zero-width space or a newline: each is refused as a
// malformed event naming the field and the character, and nothing is
// appended. Mixed Chinese, Arabic and English is accepted.
func TestServiceTextRules(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	register := func(product, place string) provenance.Event {
		w.clock = w.clock.Add(time.Minute)
		return provenance.Event{Kind: provenance.KindRegister, Actor: "acme", Time: w.clock, Item: w.newItem(), Place: place,
			Register: &provenance.Register{Product: product}}
	}
	for _, tc := range []struct {
		name, text, field, char string
		event                   provenance.Event
		signer                  keyPair
	}{
		{"override in a product", "Bag \u202eCBA", "register.product", "U+202E", register("PLACEHOLDER", ""), w.key("acme")},
		{"isolate in a place", "\u2067Shenzhen\u2069", "place", "U+2067", register("Bag", "PLACEHOLDER"), w.key("acme")},
		{"zero-width space in a name", "Acme\u200bLeather", "enroll.name", "U+200B", provenance.Event{Kind: provenance.KindEnroll,
			Actor: provenance.OperatorID, Time: w.clock, Enroll: &provenance.Actor{ID: "acme2", Role: provenance.RoleCourier, Name: "PLACEHOLDER", Key: w.key("acme2").vkey}}, w.op},
		{"newline in a product", "Bag\nSecond line", "register.product", "U+000A", register("PLACEHOLDER", ""), w.key("acme")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.size()
			_, err := w.svc.Submit(t.Context(), signText(t, tc.event, tc.signer, tc.text))
			var ee *provenance.EventError
			if !errors.As(err, &ee) || ee.Field != tc.field || !strings.Contains(err.Error(), tc.char) {
				t.Fatalf("got %v, want a malformed %s naming %s", err, tc.field, tc.char)
			}
			var re *provenance.RuleError
			if !errors.As(err, &re) || !re.NotLogged {
				t.Errorf("refusal %v: want a RuleError, not logged", err)
			}
			if after := w.size(); after != before {
				t.Fatalf("log grew from %d to %d", before, after)
			}
		})
	}
	w.ok(signText(t, register("PLACEHOLDER", "迪拜 Dubai دبي"), w.key("acme"), "手袋 حقيبة Handbag"))
}
