package provenance_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// TestSharedIndex runs two Services, as two replicas would, on one log and
// one saved index: each applies the log and saves the index, and whoever
// saves a range first wins. Events go to either at random, each following
// the one the other accepted. Both serve the same histories, the index
// holds every event once, and it equals an index rebuilt from the log.
func TestSharedIndex(t *testing.T) {
	w := newWorld(t)
	cfg := w.config()
	cfg.SaveEvery, cfg.SaveInterval, cfg.PollInterval = 8, 5*time.Millisecond, 10*time.Millisecond
	if err := w.svc.Close(); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.svc, err = provenance.NewService(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	other, err := provenance.NewService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	replicas := []*provenance.Service{w.svc, other}
	submit := func(leaf []byte) {
		t.Helper()
		svc := replicas[w.rng.IntN(2)]
		r, err := svc.Submit(t.Context(), leaf)
		if err != nil {
			t.Fatalf("refused: %v\n%s", err, leaf)
		}
		// The next event's prev is read from the first replica (w.prev);
		// the other may lag, and must catch up when it is used.
		if err := w.svc.WaitApplied(t.Context(), r.Index); err != nil {
			t.Fatal(err)
		}
	}

	submit(w.enroll("acme", provenance.RoleManufacturer))
	submit(w.enroll("swift", provenance.RoleCourier))
	submit(w.enroll("daigou", provenance.RoleReseller))
	var items []provenance.ItemID
	for range 12 {
		item := w.newItem()
		items = append(items, item)
		submit(w.register("acme", item))
	}
	for _, item := range items {
		submit(w.handoff("acme", item, provenance.Handoff{To: "swift"}))
		submit(w.receive("swift", item))
		submit(w.handoff("swift", item, provenance.Handoff{To: "daigou"}))
		submit(w.receive("daigou", item))
	}
	submit(w.revoke("swift"))

	size := w.size()
	for _, svc := range replicas {
		if err := svc.WaitApplied(t.Context(), size-1); err != nil {
			t.Fatal(err)
		}
	}
	for _, item := range items {
		var views []string
		for _, svc := range replicas {
			v, err := svc.Item(t.Context(), item)
			if err != nil {
				t.Fatalf("item %s: %v", item, err)
			}
			if len(v.Events) != 5 || v.State.Custodian != "daigou" {
				t.Fatalf("item %s: %d events, held by %q; want 5, held by daigou", item, len(v.Events), v.State.Custodian)
			}
			b, _ := json.Marshal(v.History)
			views = append(views, string(b))
		}
		if views[0] != views[1] {
			t.Fatalf("item %s: the replicas serve different histories:\n%s\n%s", item, views[0], views[1])
		}
	}
	if a, err := other.Actor(t.Context(), "swift"); err != nil || !a.Revoked {
		t.Fatalf("the other replica has swift as %+v, %v; want revoked", a, err)
	}

	for _, svc := range replicas {
		if err := svc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if applied, err := w.store.Applied(t.Context()); err != nil || applied != size {
		t.Fatalf("the shared index applied %d of %d positions (%v)", applied, size, err)
	}
	live := dumpIndex(t, w.store)
	if err := provenance.Rebuild(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	if rebuilt := dumpIndex(t, w.store); live != rebuilt {
		t.Fatalf("the shared index differs from one rebuilt from the log:\nshared  %.800s\nrebuilt %.800s", live, rebuilt)
	}
	if w.svc, err = provenance.NewService(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
}
