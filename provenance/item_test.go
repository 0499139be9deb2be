package provenance_test

import (
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// TestItemFollowsTheLog checks that Item, which caches views, always shows
// the item as the index has it now, with proofs against the log's latest
// checkpoint: after a new event of the item, after a revocation of one of
// its actors, and after others append to the log.
func TestItemFollowsTheLog(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))
	item := w.newItem()
	w.ok(w.register("acme", item))
	check := func(what string, events int, revoked bool) provenance.ItemView {
		t.Helper()
		v, err := w.svc.Item(t.Context(), item)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(v.Events) != events {
			t.Errorf("%s: %d events, want %d", what, len(v.Events), events)
		}
		if v.Checkpoint.Size != w.size() {
			t.Errorf("%s: proofs against checkpoint %d, want the latest, %d", what, v.Checkpoint.Size, w.size())
		}
		for _, a := range v.Actors {
			if a.ID == "swift" && a.Revoked != revoked {
				t.Errorf("%s: swift revoked %v, want %v", what, a.Revoked, revoked)
			}
		}
		b, err := w.svc.Bundle(t.Context(), item)
		if err != nil {
			t.Fatalf("%s: bundle: %v", what, err)
		}
		if _, err := provenance.VerifyBundle(b, w.trust); err != nil {
			t.Fatalf("%s: bundle does not verify: %v", what, err)
		}
		return v
	}
	first := check("registered", 1, false)
	if again := check("asked again", 1, false); again.Checkpoint.Size != first.Checkpoint.Size {
		t.Errorf("asked again: checkpoint moved from %d to %d", first.Checkpoint.Size, again.Checkpoint.Size)
	}
	w.ok(w.handoff("acme", item, provenance.Handoff{To: "swift"}))
	check("handed off", 2, false)
	// A leaf someone else appends (not an event: the index refuses it)
	// moves the checkpoint, and the proofs with it.
	if _, err := w.log.Append(t.Context(), [][]byte{[]byte("not an event\n")}); err != nil {
		t.Fatal(err)
	}
	check("log grown", 2, false)
	w.ok(w.revoke("swift"))
	v := check("courier revoked", 2, true)
	if v.Events[1].Event.Handoff == nil || v.Events[1].Event.Handoff.To != "swift" {
		t.Errorf("event 1 is %+v, want the handoff to swift", v.Events[1].Event)
	}
}
