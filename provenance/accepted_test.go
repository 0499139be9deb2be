package provenance_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
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

// TestWaitApplied has several waiters for log positions not yet applied:
// each wakes when its own position is applied and not before, one whose
// context ends gives up without disturbing the others, and closing the
// Service ends the wait of one whose position never comes.
func TestWaitApplied(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("maker", provenance.RoleManufacturer))
	next := w.size()
	wait := func(ctx context.Context, index uint64) chan error {
		done := make(chan error, 1)
		go func() { done <- w.svc.WaitApplied(ctx, index) }()
		return done
	}
	pending := func(name string, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("the wait for %s returned early: %v", name, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	returned := func(name string, done chan error) error {
		t.Helper()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("the wait for %s did not return", name)
			return nil
		}
	}
	cancelled, cancel := context.WithCancel(t.Context())
	first, gaveUp, third, never := wait(t.Context(), next), wait(cancelled, next+1), wait(t.Context(), next+2), wait(t.Context(), next+100)
	pending("the first", first)
	cancel()
	if err := returned("a cancelled context", gaveUp); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled wait returned %v", err)
	}
	w.ok(w.register("maker", w.newItem()))
	if err := returned("the first", first); err != nil {
		t.Fatal(err)
	}
	pending("the third", third)
	w.ok(w.register("maker", w.newItem()))
	pending("the third", third)
	w.ok(w.register("maker", w.newItem()))
	if err := returned("the third", third); err != nil {
		t.Fatal(err)
	}
	// Positions already applied return at once.
	if err := returned("an applied position", wait(t.Context(), next+1)); err != nil {
		t.Fatal(err)
	}
	pending("a position never reached", never)
	w.svc.Close()
	if err := returned("a position never reached", never); err == nil {
		t.Fatal("the wait for a position never reached ended without an error on Close")
	}
}

// TestActorEventsKeepsTheLatest gives an actor more than twice
// MaxActorEvents events: its page lists exactly the latest MaxActorEvents,
// newest first, live, after a restart (from the saved index) and after a
// rebuild from the log.
func TestActorEventsKeepsTheLatest(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("maker", provenance.RoleManufacturer))
	var all []uint64
	for range 2*provenance.MaxActorEvents + 37 {
		all = append(all, w.ok(w.register("maker", w.newItem())).Index)
	}
	want := all[len(all)-provenance.MaxActorEvents:]
	check := func(when string) {
		t.Helper()
		evs, err := w.svc.ActorEvents(t.Context(), "maker")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var got []uint64
		for _, e := range evs {
			got = append(got, e.Index)
		}
		slices.Reverse(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: the actor's events are %v, want the latest %d: %v", when, got, len(want), want)
		}
	}
	check("live")
	w.close()
	w.open()
	check("after a restart")
	w.svc.Close()
	if err := provenance.Rebuild(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.svc, err = provenance.NewService(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
}
