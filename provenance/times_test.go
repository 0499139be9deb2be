package provenance

import (
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// TestTimeRules checks the ordering rules of event times, as every replay
// applies them: an event may not be earlier than the item's previous
// event, nor than the enrollment of the key that signs it. Equal times are
// legal. Each illegal event is refused with a *TimeError of its rule
// inside a *RuleError, and leaves the state as it was.
func TestTimeRules(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	at := func(f *fixture, leaf func() []byte, tm time.Time) []byte {
		f.time = tm.Add(-time.Minute) // sign adds a minute
		return leaf()
	}
	tests := []struct {
		name string
		// leaf applies legal events, then returns the one under test.
		leaf func(f *fixture) []byte
		want error // nil: accepted
	}{
		{"register at the enrollment's time", func(f *fixture) []byte {
			f.ok(at(f, func() []byte { return f.enrollLeaf("acme", RoleManufacturer) }, t0))
			return at(f, func() []byte { return f.registerLeaf("acme", itemX) }, t0)
		}, nil},
		{"register a second before the enrollment", func(f *fixture) []byte {
			f.ok(at(f, func() []byte { return f.enrollLeaf("acme", RoleManufacturer) }, t0))
			return at(f, func() []byte { return f.registerLeaf("acme", itemX) }, t0.Add(-time.Second))
		}, ErrTimeBeforeEnrollment},
		{"handoff at the time of the register", func(f *fixture) []byte {
			base(f)
			it, _ := f.st.Item(itemX)
			return at(f, func() []byte { return f.handoffLeaf("acme", itemX, Handoff{To: "swift"}) }, it.LastTime)
		}, nil},
		{"handoff before the register", func(f *fixture) []byte {
			base(f)
			it, _ := f.st.Item(itemX)
			return at(f, func() []byte { return f.handoffLeaf("acme", itemX, Handoff{To: "swift"}) }, it.LastTime.Add(-time.Second))
		}, ErrTimeBeforePrevious},
		{"receive before the handoff", func(f *fixture) []byte {
			base(f)
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			it, _ := f.st.Item(itemX)
			return at(f, func() []byte { return f.receiveLeaf("swift", itemX) }, it.LastTime.Add(-time.Second))
		}, ErrTimeBeforePrevious},
		{"buyer's receive before the handoff (no enrollment to check)", func(f *fixture) []byte {
			base(f)
			code, h, err := NewClaim(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			f.ok(f.handoffLeaf("acme", itemX, h))
			it, _ := f.st.Item(itemX)
			return at(f, func() []byte { return f.claimLeaf(itemX, code, newKey(t, BuyerID)) }, it.LastTime.Add(-time.Minute))
		}, ErrTimeBeforePrevious},
		{"operator's ruling before the dispute", func(f *fixture) []byte {
			base(f)
			f.ok(f.disputeLeaf("acme", f.key("acme"), itemX))
			it, _ := f.st.Item(itemX)
			return at(f, func() []byte { return f.rulingLeaf(itemX) }, it.LastTime.Add(-time.Second))
		}, ErrTimeBeforePrevious},
		{"receive a minute after the handoff", func(f *fixture) []byte {
			base(f)
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			return f.receiveLeaf("swift", itemX)
		}, nil},
		{"re-enrolled key signs before its enrollment", func(f *fixture) []byte {
			base(f)
			f.ok(f.revokeLeaf("acme"))
			delete(f.keys, "acme")
			f.ok(f.enrollLeaf("acme", RoleManufacturer))
			a, _ := f.st.Actor("acme")
			// After the item's register, before the new key's enrollment.
			return at(f, func() []byte { return f.handoffLeaf("acme", itemX, Handoff{To: "swift"}) }, a.Keys[1].Enrolled.Add(-time.Second))
		}, ErrTimeBeforeEnrollment},
		{"an event long after the last is fine", func(f *fixture) []byte {
			base(f)
			return at(f, func() []byte { return f.handoffLeaf("acme", itemX, Handoff{To: "swift"}) }, t0.AddDate(3, 0, 0))
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			leaf := tc.leaf(f)
			before := dump(t, f.st)
			_, err := f.apply(leaf)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			ruleErr(t, err, tc.want)
			var te *TimeError
			if !errors.As(err, &te) || te.Rule != tc.want || !te.Time.Before(te.Bound) {
				t.Fatalf("error %v: want a *TimeError of %v with the event's time before its bound", err, tc.want)
			}
			if code := ErrorCode(err); code == "" || CodeError(code) != tc.want {
				t.Errorf("error code %q does not stand for %v", code, tc.want)
			}
			t.Logf("%v", err)
			if after := dump(t, f.st); after != before {
				t.Fatalf("a refused event changed the state:\n%s\n%s", before, after)
			}
		})
	}
}

// TestTimeRulesReplay checks that an item's last event time and its
// signers' enrollment times are what a replay rebuilds: a state rebuilt by
// applying the same leaves refuses the same early event.
func TestTimeRulesReplay(t *testing.T) {
	f := newFixture(t)
	base(f)
	f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "other"}))
	f.ok(f.receiveLeaf("other", itemX))

	st, err := NewState(f.op.vkey)
	if err != nil {
		t.Fatal(err)
	}
	for i, leaf := range f.leaves {
		if _, err := st.Apply(uint64(i), leaf); err != nil {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
	if dump(t, st) != dump(t, f.st) {
		t.Fatal("replay differs from live")
	}
	it, _ := st.Item(itemX)
	f.time = it.LastTime.Add(-time.Minute - time.Second) // sign adds a minute
	early := f.handoffLeaf("other", itemX, Handoff{To: "swift"})
	if _, err := st.Check(uint64(len(f.leaves)), early); !errors.Is(err, ErrTimeBeforePrevious) {
		t.Fatalf("a handoff a second before the receive: %v, want ErrTimeBeforePrevious", err)
	}
}
