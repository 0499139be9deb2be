package provenance_test

import (
	"context"
	"errors"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// chain signs an item's events ahead, each naming the one before as prev,
// as a client does that sends them in one batch.
type chain struct {
	w    *world
	item provenance.ItemID
	prev merkle.Hash
}

func (c *chain) next(e provenance.Event, by string) []byte {
	e.Item, e.Prev = c.item, c.prev
	e.Actor = by
	leaf := c.w.sign(e, c.w.key(by))
	c.prev = merkle.LeafHash(leaf)
	return leaf
}

func (c *chain) register(by string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindRegister, Register: &provenance.Register{Product: "Handbag"}}, by)
}

func (c *chain) handoff(by, to string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindHandoff, Handoff: &provenance.Handoff{To: to}}, by)
}

func (c *chain) receive(by string) []byte {
	return c.next(provenance.Event{Kind: provenance.KindReceive, Receive: &provenance.Receive{By: by}}, by)
}

// TestSubmitBatch submits batches mixing items whose events must go in
// order, refusals, duplicates and garbage, and checks each result and
// that only what was accepted reached the log.
func TestSubmitBatch(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	res := w.svc.SubmitBatch(ctx, [][]byte{
		w.enroll("acme", provenance.RoleManufacturer),
		w.enroll("swift", provenance.RoleCourier),
		w.enroll("fleet", provenance.RoleCourier),
	}, 8, nil)
	for i, r := range res {
		if r.Err != nil || r.Receipt.Duplicate {
			t.Fatalf("enrollment %d: %+v", i, r)
		}
	}

	// 40 items of register, handoff, receive: unless each item's events
	// go in order, some receive comes before its handoff and is refused.
	var leaves [][]byte
	var items []provenance.ItemID
	for range 40 {
		c := &chain{w: w, item: w.newItem()}
		items = append(items, c.item)
		leaves = append(leaves, c.register("acme"), c.handoff("acme", "swift"), c.receive("swift"))
	}
	// An item whose handoff is by a courier that does not hold it: the
	// receive after it is not attempted.
	bad := &chain{w: w, item: w.newItem()}
	badReg := bad.register("acme")
	leaves = append(leaves, badReg, bad.handoff("swift", "fleet"), bad.receive("fleet"))
	// A register sent twice: the second is its duplicate.
	dup := &chain{w: w, item: w.newItem()}
	dupReg := dup.register("acme")
	leaves = append(leaves, dupReg, dupReg)
	// Not a note at all.
	leaves = append(leaves, []byte("not a signed note\n"))

	size := w.size()
	res = w.svc.SubmitBatch(ctx, leaves, 8, nil)
	if len(res) != len(leaves) {
		t.Fatalf("%d results for %d events", len(res), len(leaves))
	}
	v, _ := note.NewVerifier(w.logKey.vkey)
	accepted := 0
	for i := range 40 * 3 {
		r := res[i]
		if r.Err != nil || r.Receipt.Duplicate {
			t.Fatalf("event %d (item %d, step %d): %v", i, i/3, i%3, r.Err)
		}
		if _, idx, err := merkle.VerifyProof(r.Receipt.Proof, leaves[i], origin, v); err != nil || idx != r.Receipt.Index {
			t.Fatalf("event %d: receipt does not verify: index %d, %v", i, idx, err)
		}
		accepted++
	}
	n := 40 * 3
	if res[n].Err != nil {
		t.Fatalf("register of the bad chain: %v", res[n].Err)
	}
	if !errors.Is(res[n+1].Err, provenance.ErrNotCustodian) {
		t.Fatalf("handoff by a courier without the item: %v, want ErrNotCustodian", res[n+1].Err)
	}
	if !errors.Is(res[n+2].Err, provenance.ErrNotAttempted) {
		t.Fatalf("receive after a refused handoff: %v, want ErrNotAttempted", res[n+2].Err)
	}
	if res[n+3].Err != nil || res[n+3].Receipt.Duplicate {
		t.Fatalf("first register: %+v", res[n+3])
	}
	if res[n+4].Err != nil || !res[n+4].Receipt.Duplicate || res[n+4].Receipt.Index != res[n+3].Receipt.Index {
		t.Fatalf("the same register again: %+v, want a duplicate of index %d", res[n+4], res[n+3].Receipt.Index)
	}
	if !errors.Is(res[n+5].Err, provenance.ErrMalformedEvent) {
		t.Fatalf("garbage: %v, want ErrMalformedEvent", res[n+5].Err)
	}
	accepted += 2 // the bad chain's register, the first of the two registers
	if got := w.size() - size; got != uint64(accepted) {
		t.Fatalf("the log grew by %d, want the %d accepted events", got, accepted)
	}
	for i, item := range items {
		iv, err := w.svc.Item(ctx, item)
		if err != nil {
			t.Fatal(err)
		}
		if iv.State.Custodian != "swift" || len(iv.Events) != 3 {
			t.Fatalf("item %d: custodian %q, %d events", i, iv.State.Custodian, len(iv.Events))
		}
	}
	if iv, err := w.svc.Item(ctx, bad.item); err != nil || iv.State.Custodian != "acme" || len(iv.Events) != 1 {
		t.Fatalf("bad chain's item: %v, %+v", err, iv.State)
	}
}

// TestSubmitBatchAdmission checks that an event admit turns away gets
// admit's error, the rest of its item's events are not attempted, and
// nothing of them is appended; and that a cancelled batch appends nothing.
func TestSubmitBatchAdmission(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))

	errBusy := errors.New("busy")
	calls, released := 0, 0
	admitSecond := func(context.Context) (func(), error) {
		calls++
		if calls == 2 {
			return nil, errBusy
		}
		return func() { released++ }, nil
	}
	c := &chain{w: w, item: w.newItem()}
	leaves := [][]byte{c.register("acme"), c.handoff("acme", "swift"), c.receive("swift")}
	size := w.size()
	res := w.svc.SubmitBatch(ctx, leaves, 1, admitSecond)
	if res[0].Err != nil || !errors.Is(res[1].Err, errBusy) || !errors.Is(res[2].Err, provenance.ErrNotAttempted) {
		t.Fatalf("results %v, %v, %v: want accepted, busy, not attempted", res[0].Err, res[1].Err, res[2].Err)
	}
	if calls != 2 || released != 1 {
		t.Fatalf("admit called %d times, released %d: want 2 and 1", calls, released)
	}
	if got := w.size() - size; got != 1 {
		t.Fatalf("the log grew by %d, want 1", got)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	other := &chain{w: w, item: w.newItem()}
	size = w.size()
	res = w.svc.SubmitBatch(cancelled, [][]byte{other.register("acme"), other.handoff("acme", "swift")}, 4, nil)
	for i, r := range res {
		if !errors.Is(r.Err, context.Canceled) {
			t.Fatalf("event %d of a cancelled batch: %v", i, r.Err)
		}
	}
	if w.size() != size {
		t.Fatal("a cancelled batch appended")
	}
}

// TestSubmitBatchEmpty: no events, no results, nothing appended.
func TestSubmitBatchEmpty(t *testing.T) {
	w := newWorld(t)
	size := w.size()
	if res := w.svc.SubmitBatch(t.Context(), nil, 4, nil); len(res) != 0 {
		t.Fatalf("%d results for no events", len(res))
	}
	if w.size() != size {
		t.Fatal("an empty batch appended")
	}
}
