// Package storetest is the conformance suite every [provenance.Store]
// (index) runs, as merkle/logtest is for logs.
//
// An implementation's tests call [Run] with a function that opens an empty
// index (a fresh file or database schema) for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) provenance.Store {
//			// open an empty index; close it in t.Cleanup
//		})
//	}
//
// # What it checks
//
//   - Empty: Applied is 0, every record read fails with an error matching
//     provenance.ErrNotFound, no refusals.
//   - SaveAndRead: the records of a delta read back as saved (item IDs
//     with every character a serial may hold), Applied is the delta's end,
//     later deltas replace records, refusals read back by range.
//   - Gap: a delta that does not start at Applied fails with an error
//     matching provenance.ErrStoreGap and saves none of its records, so of
//     two replicas saving the same range only the first does.
//   - Concurrent: readers running while deltas are saved never see an
//     error, nor a record older than one they saw before.
//   - Reset: an index reset is empty and takes deltas from 0 again.
//   - CancelledContext: reads and saves with a cancelled context fail.
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// Run runs the conformance suite; open returns an empty index.
func Run(t *testing.T, open func(t *testing.T) provenance.Store) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open(t)) })
	t.Run("SaveAndRead", func(t *testing.T) { testSaveAndRead(t, open(t)) })
	t.Run("Gap", func(t *testing.T) { testGap(t, open(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("Reset", func(t *testing.T) { testReset(t, open(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, open(t)) })
}

func item(t *testing.T, serial string) provenance.ItemID {
	t.Helper()
	id, err := provenance.NewItemID("09506000134352", serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func itemRecord(id provenance.ItemID, events ...uint64) provenance.ItemRecord {
	last := events[len(events)-1]
	return provenance.ItemRecord{
		State: provenance.ItemState{
			ID: id, Product: "Handbag <b>Classic</b> \u6b63\u54c1", Lot: "L1",
			RegisteredBy: "acme", Registered: events[0], Custodian: "swift",
			Status: provenance.StatusInTransit, Parties: []string{"acme", "swift"},
			Pending:   &provenance.PendingHandoff{Index: last, To: "daigou", Claim: sha256.Sum256([]byte("c")), Salt: []byte("salt")},
			Delivered: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC), DeliveredAt: last,
			LastIndex: last, Events: len(events),
			Last: sha256.Sum256([]byte(fmt.Sprint(last))),
		},
		Events: events,
	}
}

func actorRecord(id string, events ...uint64) provenance.ActorRecord {
	return provenance.ActorRecord{
		State: provenance.ActorState{
			Actor:  provenance.Actor{ID: id, Role: provenance.RoleCourier, Name: "Swift \u5feb\u9012", Key: id + "+01234567+AAAA"},
			Keys:   []provenance.KeyWindow{{Key: id + "+01234567+AAAA", From: events[0]}},
			Latest: sha256.Sum256([]byte(id)),
		},
		Events: events,
	}
}

func save(t *testing.T, s provenance.Store, d provenance.Delta) {
	t.Helper()
	if err := s.Save(t.Context(), d); err != nil {
		t.Fatalf("save [%d, %d): %v", d.From, d.To, err)
	}
}

func applied(t *testing.T, s provenance.Store) uint64 {
	t.Helper()
	at, err := s.Applied(t.Context())
	if err != nil {
		t.Fatalf("applied: %v", err)
	}
	return at
}

func wantItem(t *testing.T, s provenance.Store, want provenance.ItemRecord) {
	t.Helper()
	got, err := s.Item(t.Context(), want.State.ID)
	if err != nil {
		t.Fatalf("item %s: %v", want.State.ID, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("item %s reads back as\n%+v\nwant\n%+v", want.State.ID, got, want)
	}
}

func wantActor(t *testing.T, s provenance.Store, want provenance.ActorRecord) {
	t.Helper()
	got, err := s.Actor(t.Context(), want.State.ID)
	if err != nil {
		t.Fatalf("actor %s: %v", want.State.ID, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("actor %s reads back as\n%+v\nwant\n%+v", want.State.ID, got, want)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, provenance.ErrNotFound) {
		t.Fatalf("%s: %v, want an error matching ErrNotFound", what, err)
	}
}

func testEmpty(t *testing.T, s provenance.Store) {
	if at := applied(t, s); at != 0 {
		t.Fatalf("empty index applied %d", at)
	}
	_, err := s.Actor(t.Context(), "swift")
	wantNotFound(t, "actor", err)
	_, err = s.Item(t.Context(), item(t, "S1"))
	wantNotFound(t, "item", err)
	_, err = s.Claim(t.Context(), sha256.Sum256([]byte("c")))
	wantNotFound(t, "claim", err)
	if r, err := s.Refused(t.Context(), 0, 1000); err != nil || len(r) != 0 {
		t.Fatalf("refusals of an empty index: %v, %v", r, err)
	}
}

func testSaveAndRead(t *testing.T, s provenance.Store) {
	odd := item(t, `a/b?c=d&e%"'<>!*+,_:`)
	plain := item(t, "S2")
	claim := sha256.Sum256([]byte("claim"))
	save(t, s, provenance.Delta{
		From: 0, To: 5,
		Actors:  []provenance.ActorRecord{actorRecord("swift", 0), actorRecord("acme", 1, 2)},
		Items:   []provenance.ItemRecord{itemRecord(odd, 2), itemRecord(plain, 3)},
		Claims:  []provenance.ClaimRecord{{Claim: claim, Item: odd, Index: 3}},
		Refused: []provenance.Refusal{{Index: 4, Reason: "stale prev: \u2014 <b>"}},
	})
	if at := applied(t, s); at != 5 {
		t.Fatalf("applied %d after a delta to 5", at)
	}
	wantActor(t, s, actorRecord("swift", 0))
	wantActor(t, s, actorRecord("acme", 1, 2))
	wantItem(t, s, itemRecord(odd, 2))
	wantItem(t, s, itemRecord(plain, 3))
	want := provenance.ClaimRecord{Claim: claim, Item: odd, Index: 3}
	if got, err := s.Claim(t.Context(), claim); err != nil || got != want {
		t.Fatalf("claim: %+v, %v; want %+v", got, err, want)
	}

	// A later delta replaces what it names and leaves the rest.
	save(t, s, provenance.Delta{
		From: 5, To: 9,
		Actors:  []provenance.ActorRecord{actorRecord("swift", 0, 6)},
		Items:   []provenance.ItemRecord{itemRecord(odd, 2, 6, 7)},
		Refused: []provenance.Refusal{{Index: 5, Reason: "a"}, {Index: 8, Reason: "b"}},
	})
	if at := applied(t, s); at != 9 {
		t.Fatalf("applied %d after a delta to 9", at)
	}
	wantActor(t, s, actorRecord("swift", 0, 6))
	wantActor(t, s, actorRecord("acme", 1, 2))
	wantItem(t, s, itemRecord(odd, 2, 6, 7))
	wantItem(t, s, itemRecord(plain, 3))

	for _, tc := range []struct {
		from, to uint64
		want     []uint64
	}{
		{0, 9, []uint64{4, 5, 8}},
		{4, 5, []uint64{4}},
		{5, 8, []uint64{5}},
		{6, 8, nil},
		{8, 1 << 63, []uint64{8}},
		{9, 100, nil},
	} {
		r, err := s.Refused(t.Context(), tc.from, tc.to)
		if err != nil {
			t.Fatalf("refused [%d, %d): %v", tc.from, tc.to, err)
		}
		var got []uint64
		for _, x := range r {
			got = append(got, x.Index)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("refused [%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	if r, _ := s.Refused(t.Context(), 4, 5); len(r) != 1 || r[0].Reason != "stale prev: \u2014 <b>" {
		t.Errorf("refusal reads back as %+v", r)
	}
}

func testGap(t *testing.T, s provenance.Store) {
	save(t, s, provenance.Delta{From: 0, To: 3, Items: []provenance.ItemRecord{itemRecord(item(t, "S1"), 1)}})
	for _, d := range []provenance.Delta{
		{From: 0, To: 3}, // a second replica saving the same range
		{From: 1, To: 5},
		{From: 4, To: 5},
	} {
		d.Items = []provenance.ItemRecord{itemRecord(item(t, "S1"), 1, 2), itemRecord(item(t, "GAP"), 2)}
		d.Actors = []provenance.ActorRecord{actorRecord("gap", 2)}
		d.Claims = []provenance.ClaimRecord{{Claim: sha256.Sum256([]byte("gap")), Item: item(t, "GAP"), Index: 2}}
		d.Refused = []provenance.Refusal{{Index: 2, Reason: "gap"}}
		if err := s.Save(t.Context(), d); !errors.Is(err, provenance.ErrStoreGap) {
			t.Fatalf("delta [%d, %d) on an index at 3: %v, want an error matching ErrStoreGap", d.From, d.To, err)
		}
	}
	if at := applied(t, s); at != 3 {
		t.Fatalf("applied %d after refused deltas, want 3", at)
	}
	wantItem(t, s, itemRecord(item(t, "S1"), 1))
	_, err := s.Item(t.Context(), item(t, "GAP"))
	wantNotFound(t, "item of a refused delta", err)
	_, err = s.Actor(t.Context(), "gap")
	wantNotFound(t, "actor of a refused delta", err)
	_, err = s.Claim(t.Context(), sha256.Sum256([]byte("gap")))
	wantNotFound(t, "claim of a refused delta", err)
	if r, err := s.Refused(t.Context(), 0, 10); err != nil || len(r) != 0 {
		t.Fatalf("refusals of a refused delta: %v, %v", r, err)
	}
}

func testConcurrent(t *testing.T, s provenance.Store) {
	id := item(t, "S1")
	save(t, s, provenance.Delta{From: 0, To: 1, Items: []provenance.ItemRecord{itemRecord(id, 0)}})
	const rounds = 50
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			var seen uint64
			for {
				select {
				case <-stop:
					return
				default:
				}
				rec, err := s.Item(t.Context(), id)
				if err != nil {
					errs <- fmt.Errorf("read while saving: %w", err)
					return
				}
				if last := rec.State.LastIndex; last < seen {
					errs <- fmt.Errorf("read event %d after %d", last, seen)
					return
				} else {
					seen = last
				}
				if _, err := s.Applied(t.Context()); err != nil {
					errs <- fmt.Errorf("applied while saving: %w", err)
					return
				}
			}
		})
	}
	events := []uint64{0}
	for i := uint64(1); i <= rounds; i++ {
		events = append(events, i)
		save(t, s, provenance.Delta{From: i, To: i + 1, Items: []provenance.ItemRecord{itemRecord(id, events...)}})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantItem(t, s, itemRecord(id, events...))
}

func testReset(t *testing.T, s provenance.Store) {
	save(t, s, provenance.Delta{From: 0, To: 4,
		Actors:  []provenance.ActorRecord{actorRecord("swift", 0)},
		Items:   []provenance.ItemRecord{itemRecord(item(t, "S1"), 1)},
		Claims:  []provenance.ClaimRecord{{Claim: sha256.Sum256([]byte("c")), Item: item(t, "S1"), Index: 2}},
		Refused: []provenance.Refusal{{Index: 3, Reason: "x"}},
	})
	if err := s.Reset(t.Context()); err != nil {
		t.Fatalf("reset: %v", err)
	}
	testEmpty(t, s)
	save(t, s, provenance.Delta{From: 0, To: 1, Actors: []provenance.ActorRecord{actorRecord("acme", 0)}})
	wantActor(t, s, actorRecord("acme", 0))
}

func testCancelled(t *testing.T, s provenance.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Applied(ctx); err == nil {
		t.Error("Applied with a cancelled context succeeded")
	}
	if _, err := s.Item(ctx, item(t, "S1")); err == nil || errors.Is(err, provenance.ErrNotFound) {
		t.Errorf("Item with a cancelled context: %v, want the context's error", err)
	}
	if err := s.Save(ctx, provenance.Delta{From: 0, To: 1, Actors: []provenance.ActorRecord{actorRecord("acme", 0)}}); err == nil {
		t.Error("Save with a cancelled context succeeded")
	}
	if at := applied(t, s); at != 0 {
		t.Fatalf("a save with a cancelled context applied %d", at)
	}
}
