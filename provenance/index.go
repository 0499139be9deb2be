package provenance

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// The index as the Service has applied it is two layers: the records its
// State holds (changed since the last save, or read for a check since),
// and under them the saved index in the Store. Nothing else is kept in
// memory, so memory is bounded by what one save interval touches, not by
// the size of the index.
//
// Only the applier changes the State, and only it saves; it reads the
// State without s.mu, and writes it under s.mu. Everyone else reads the
// State under s.mu and the Store without it: no storage I/O happens under
// the lock.

// A source is where a check finds the records its State does not hold.
type source interface {
	// actor returns an enrolled actor and its latest events, or nil.
	actor(ctx context.Context, id string) (*ActorState, []uint64, error)
	// item returns a registered item and its events, or nil.
	item(ctx context.Context, id ItemID) (*ItemState, []uint64, error)
	// claim returns the item whose buyer used a claim, or the zero ItemID.
	claim(ctx context.Context, c [sha256.Size]byte) (ItemID, error)
}

// saved reads the Store: the applier's source. With at, the position the
// applier is about to apply, it refuses a record changed at or after at,
// with errIndexAhead: another replica saved more of a shared index than
// this one applied, and applying on top of it would mix two positions.
type saved struct {
	store Store
	at    *uint64
}

// errIndexAhead says that the saved index holds changes past the position
// being applied.
var errIndexAhead = errors.New("the saved index is ahead of the position being applied")

func (r saved) actor(ctx context.Context, id string) (*ActorState, []uint64, error) {
	rec, err := r.store.Actor(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read actor %q: %w", id, err)
	case r.at != nil && (actorChangedAt(rec.State) >= *r.at || len(rec.Events) > 0 && rec.Events[len(rec.Events)-1] >= *r.at):
		return nil, nil, errIndexAhead
	}
	return &rec.State, rec.Events, nil
}

func (r saved) item(ctx context.Context, id ItemID) (*ItemState, []uint64, error) {
	rec, err := r.store.Item(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("read item %s: %w", id, err)
	case r.at != nil && rec.State.LastIndex >= *r.at:
		return nil, nil, errIndexAhead
	}
	return &rec.State, rec.Events, nil
}

func (r saved) claim(ctx context.Context, c [sha256.Size]byte) (ItemID, error) {
	rec, err := r.store.Claim(ctx, c)
	switch {
	case errors.Is(err, ErrNotFound):
		return ItemID{}, nil
	case err != nil:
		return ItemID{}, fmt.Errorf("read claim: %w", err)
	case r.at != nil && rec.Index >= *r.at:
		return ItemID{}, errIndexAhead
	}
	return rec.Item, nil
}

// actorChangedAt returns the log position of the latest change to an
// actor's record: its latest enrollment or revocation.
func actorChangedAt(a ActorState) uint64 {
	k := a.Keys[len(a.Keys)-1]
	if k.Revoked {
		return k.To
	}
	return k.From
}

// current reads the index as the Service has applied it: the State's
// record, under s.mu, else the Store's. A record the State drops after a
// save is in the Store by then, so a read never goes back in time.
type current struct{ s *Service }

func (r current) actor(ctx context.Context, id string) (*ActorState, []uint64, error) {
	r.s.mu.RLock()
	a, held := r.s.state.actors[id]
	ev := r.s.actorEvents[id]
	r.s.mu.RUnlock()
	if held {
		return a, ev, nil
	}
	return saved{store: r.s.store}.actor(ctx, id)
}

func (r current) item(ctx context.Context, id ItemID) (*ItemState, []uint64, error) {
	k := id.key()
	r.s.mu.RLock()
	it, held := r.s.state.items[k]
	ev := r.s.events[k]
	r.s.mu.RUnlock()
	if held {
		return it, ev, nil
	}
	return saved{store: r.s.store}.item(ctx, id)
}

func (r current) claim(ctx context.Context, c [sha256.Size]byte) (ItemID, error) {
	r.s.mu.RLock()
	id, held := r.s.state.claims[c]
	r.s.mu.RUnlock()
	if held {
		return id, nil
	}
	return saved{store: r.s.store}.claim(ctx, c)
}

// loaded are records read from a source for a check, with the event
// positions of the actors and items among them. Its maps are made when a
// record is first put in them: most leaves the applier applies read only
// records its State holds already.
type loaded struct {
	actors      map[string]*ActorState
	actorEvents map[string][]uint64
	items       map[itemKey]*ItemState
	events      map[itemKey][]uint64
	claims      map[[sha256.Size]byte]ItemID
}

// load reads from src every record that checking e reads and that neither
// st nor l holds, into l. st is read without a lock: the caller is the
// only one who changes it, or it is the caller's own.
func (l *loaded) load(ctx context.Context, st *State, e Event, src source) error {
	for _, id := range actorsRead(st.opID, e) {
		if _, held := st.actors[id]; held {
			continue
		}
		if _, held := l.actors[id]; held {
			continue
		}
		a, ev, err := src.actor(ctx, id)
		if err != nil {
			return err
		}
		if l.actors == nil {
			l.actors, l.actorEvents = map[string]*ActorState{}, map[string][]uint64{}
		}
		l.actors[id], l.actorEvents[id] = a, ev
	}
	if !e.Kind.IsItemEvent() {
		return nil
	}
	k := e.Item.key()
	it, held := st.items[k]
	if !held {
		if it, held = l.items[k]; !held {
			var ev []uint64
			var err error
			if it, ev, err = src.item(ctx, e.Item); err != nil {
				return err
			}
			l.items, l.events = map[itemKey]*ItemState{k: it}, map[itemKey][]uint64{k: ev}
		}
	}
	c, ok := claimRead(e, it)
	if !ok {
		return nil
	}
	if _, held := st.claims[c]; held {
		return nil
	}
	id, err := src.claim(ctx, c)
	if err != nil {
		return err
	}
	l.claims = map[[sha256.Size]byte]ItemID{c: id}
	return nil
}

// into adds l's records to st, and their event positions to the maps
// given.
func (l *loaded) into(st *State, actorEvents map[string][]uint64, events map[itemKey][]uint64) {
	for id, a := range l.actors {
		st.actors[id], actorEvents[id] = a, l.actorEvents[id]
	}
	for k, it := range l.items {
		st.items[k], events[k] = it, l.events[k]
	}
	for c, id := range l.claims {
		st.claims[c] = id
	}
}

// actorsRead returns the enrolled actors whose records checking e reads:
// its signer, and the actor it enrolls, revokes or hands off to.
func actorsRead(opID string, e Event) []string {
	var ids []string
	if e.Actor != opID && e.Actor != BuyerID {
		ids = append(ids, e.Actor)
	}
	switch {
	case e.Enroll != nil:
		ids = append(ids, e.Enroll.ID)
	case e.Revoke != nil:
		ids = append(ids, e.Revoke.ID)
	case e.Handoff != nil && e.Handoff.To != "":
		ids = append(ids, e.Handoff.To)
	}
	return ids
}

// claimRead returns the claim whose use checking e reads, given the state
// of e's item: the claim a handoff to a buyer offers, or the one a buyer's
// receive uses up.
func claimRead(e Event, it *ItemState) ([sha256.Size]byte, bool) {
	switch {
	case e.Handoff != nil && e.Handoff.To == "":
		b, err := base64.StdEncoding.DecodeString(e.Handoff.Claim)
		if err != nil || len(b) != sha256.Size {
			return [sha256.Size]byte{}, false
		}
		return [sha256.Size]byte(b), true
	case e.Receive != nil && e.Receive.By == "" && it != nil && it.Pending != nil:
		return ClaimHash(it.Pending.Salt, e.Receive.ClaimCode), true
	}
	return [sha256.Size]byte{}, false
}

// checkState returns a State holding what checking e against the index as
// applied now reads, and the log position it was applied up to.
func (s *Service) checkState(ctx context.Context, e Event) (*State, uint64, error) {
	s.mu.RLock()
	applied := s.applied
	s.mu.RUnlock()
	// The check only reads st: its maps are the ones load makes.
	st := &State{opID: s.opID, opKey: s.trust.OperatorKey, op: s.op, next: applied}
	var l loaded
	if err := l.load(ctx, st, e, current{s}); err != nil {
		return nil, 0, err
	}
	st.actors, st.items, st.claims = l.actors, l.items, l.claims
	return st, applied, nil
}
