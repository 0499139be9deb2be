package provenance_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// TestAccepted follows the log through Accepted and WaitApplied, as an
// escrow hook does, and finds the buyer's receive by its role.
func TestAccepted(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("maker", provenance.RoleManufacturer))
	w.ok(w.enroll("shop", provenance.RoleReseller))
	item := w.newItem()
	w.ok(w.register("maker", item))
	w.ok(w.handoff("maker", item, provenance.Handoff{To: "shop"}))
	w.ok(w.receive("shop", item))
	code, h, err := provenance.NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w.ok(w.handoff("shop", item, h))
	// A refused event is in no one's list: it is not even appended.
	if _, err := w.svc.Submit(t.Context(), w.receive("shop", item)); err == nil {
		t.Fatal("a receive by the wrong receiver was accepted")
	}
	delivered := w.ok(w.claim(item, code))

	var got []provenance.Applied
	var next uint64
	for next < 7 {
		events, n, err := w.svc.Accepted(t.Context(), next, 3)
		if err != nil {
			t.Fatal(err)
		}
		if n == next || n-next > 3 {
			t.Fatalf("Accepted(%d, 3) returned next %d", next, n)
		}
		got, next = append(got, events...), n
	}
	if len(got) != 7 {
		t.Fatalf("followed %d events, want 7", len(got))
	}
	for i, a := range got {
		if a.Index != uint64(i) {
			t.Errorf("event %d has index %d", i, a.Index)
		}
	}
	last := got[6]
	if last.Event.Kind != provenance.KindReceive || last.Role != provenance.RoleBuyer || last.Index != delivered.Index || last.LeafHash != delivered.LeafHash {
		t.Errorf("the buyer's receive followed as %+v", last)
	}
	if got[5].Role != provenance.RoleReseller || got[0].Role != provenance.RoleOperator {
		t.Errorf("roles: %s, %s", got[4].Role, got[0].Role)
	}

	// Nothing new: no events, and WaitApplied wakes when there is.
	events, n, err := w.svc.Accepted(t.Context(), next, 10)
	if err != nil || len(events) != 0 || n != next {
		t.Fatalf("Accepted at the end: %d events, next %d, %v", len(events), n, err)
	}
	done := make(chan error, 1)
	go func() { done <- w.svc.WaitApplied(t.Context(), next) }()
	select {
	case err := <-done:
		t.Fatalf("WaitApplied returned before anything was applied: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	w.ok(w.sign(provenance.Event{Kind: provenance.KindDispute, Actor: "shop", Item: item, Prev: w.prev(item),
		Dispute: &provenance.Dispute{Reason: "not the item I sold"}}, w.key("shop")))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	events, _, err = w.svc.Accepted(t.Context(), next, 10)
	if err != nil || len(events) != 1 || events[0].Event.Kind != provenance.KindDispute {
		t.Fatalf("after a dispute: %v, %v", events, err)
	}
}
