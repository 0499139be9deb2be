package provenance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// run applies what the log gains, from this Service's submissions or from
// other writers, and saves the index after SaveEvery positions or
// SaveInterval, whichever comes first.
func (s *Service) run() {
	defer close(s.stopped)
	poll := time.NewTicker(s.pollInterval)
	defer poll.Stop()
	tick := time.NewTicker(s.saveInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-poll.C:
		case <-tick.C:
		}
		if err := s.catchUp(s.ctx); err != nil && s.ctx.Err() == nil {
			s.logger.Error("apply log", "err", err)
		}
		if time.Since(s.lastSave) >= s.saveInterval {
			if err := s.save(s.ctx); err != nil && s.ctx.Err() == nil {
				s.logger.Error("save index", "err", err)
			}
		}
	}
}

// catchUp applies every log position up to the latest checkpoint. Only
// the applier calls it (and NewService, before the applier starts).
func (s *Service) catchUp(ctx context.Context) error {
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if err := s.syncWithStore(ctx); err != nil {
		return err
	}
	const chunk = 1024
	for s.applied < cp.Size {
		from := s.applied
		leaves, err := s.log.Leaves(ctx, from, min(cp.Size, from+chunk))
		if err != nil {
			return err
		}
		if err := s.applyLeaves(ctx, from, leaves); errors.Is(err, errIndexAhead) {
			if err := s.syncWithStore(ctx); err != nil {
				return err
			}
			if s.applied == from {
				return err // the saved index is not ahead after all: a record is inconsistent with its position
			}
			continue
		} else if err != nil {
			return err
		}
		// A save that failed (a full disk) is tried again after
		// SaveInterval, not after every chunk.
		if s.applied-s.dirty.from >= uint64(s.saveEvery) && time.Since(s.lastSave) >= s.saveInterval/10 {
			if err := s.save(ctx); err != nil {
				s.logger.Error("save index", "err", err)
			}
		}
	}
	return nil
}

// applyLeaves applies the leaves at positions first, first+1, ... in
// order. Each is checked against the records it reads, loaded from the
// saved index without s.mu, then applied under s.mu. An error reading the
// index stops it where it is: the position is applied later, never
// refused for it.
func (s *Service) applyLeaves(ctx context.Context, first uint64, leaves [][]byte) error {
	from := s.applied
	defer func() { s.wake(from, s.applied) }()
	for i, leaf := range leaves {
		index := first + uint64(i)
		c, parseErr := s.takeChecked(leaf)
		var l loaded
		if parseErr == nil {
			if err := l.load(ctx, s.state, c.event, saved{store: s.store, at: &index}); err != nil {
				return fmt.Errorf("apply %d: %w", index, err)
			}
		}
		s.mu.Lock()
		l.into(s.state, s.actorEvents, s.events)
		var a Applied
		err := parseErr
		if err == nil {
			a, err = s.state.ApplyChecked(index, c)
		} else {
			err = &RuleError{Index: index, Err: err}
		}
		if err != nil {
			s.refused[index] = err
			s.dirty.refused = append(s.dirty.refused, Refusal{Index: index, Reason: err.Error()})
		} else {
			s.noteApplied(a)
		}
		s.applied = index + 1
		s.mu.Unlock()
		if c != nil {
			c.outcome, c.applied = err, true
		}
	}
	return nil
}

// takeChecked returns the parsed leaf: Submit's check of it if this
// process submitted it, which spares parsing it and verifying its
// signature again.
func (s *Service) takeChecked(leaf []byte) (*Checked, error) {
	h := merkle.LeafHash(leaf)
	s.pendMu.Lock()
	c := s.pending[h]
	delete(s.pending, h)
	s.pendMu.Unlock()
	if c != nil {
		return c, nil
	}
	return NewChecked(leaf)
}

// wake publishes that the positions [from, to) are applied, and wakes
// whoever waits for one of them.
func (s *Service) wake(from, to uint64) {
	if to <= from {
		return
	}
	s.appliedPos.Store(to)
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	if len(s.waiters) == 0 {
		return
	}
	for i := from; i < to; i++ {
		for _, ch := range s.waiters[i] {
			close(ch)
		}
		delete(s.waiters, i)
	}
}

// noteApplied records what an accepted event changed, for the next save.
// Called with s.mu held.
func (s *Service) noteApplied(a Applied) {
	e := a.Event
	s.noteActorEvent(e.Actor, a.Index)
	switch {
	case e.Kind == KindEnroll:
		s.noteActorEvent(e.Enroll.ID, a.Index)
	case e.Kind == KindRevoke:
		s.noteActorEvent(e.Revoke.ID, a.Index)
	case e.Kind.IsItemEvent():
		k := e.Item.key()
		s.events[k] = append(s.events[k], a.Index)
		s.dirty.items[k] = e.Item
		if a.Claim != nil {
			s.dirty.claims = append(s.dirty.claims, ClaimRecord{Claim: *a.Claim, Item: e.Item, Index: a.Index})
		}
	}
}

// MaxActorEvents is how many of an actor's latest events the index keeps
// for its page: those it signed, and its enrollments and revocations.
const MaxActorEvents = 100

// noteActorEvent adds the log position index to the recent events of the
// enrolled actor id (not the operator's or a buyer's one-off key).
func (s *Service) noteActorEvent(id string, index uint64) {
	if _, ok := s.state.Actor(id); !ok {
		return
	}
	// Up to twice as many are kept, trimmed to MaxActorEvents when that is
	// exceeded, so that the list is not copied at every event. Readers
	// take the last MaxActorEvents.
	ev := append(s.actorEvents[id], index)
	if len(ev) > 2*MaxActorEvents {
		ev = slices.Clone(ev[len(ev)-MaxActorEvents:])
	}
	s.actorEvents[id] = ev
	s.dirty.actors[id] = true
}

// save writes what changed since the last save to the Store, then drops
// the records the State held: they are read from the Store from then on.
// Only the applier saves (and NewService and Close, when it does not
// run), so nothing changes the State meanwhile. A failed save keeps
// everything for the next one.
func (s *Service) save(ctx context.Context) error {
	s.lastSave = time.Now()
	if s.applied == s.dirty.from {
		return nil
	}
	d := Delta{From: s.dirty.from, To: s.applied, Claims: s.dirty.claims, Refused: s.dirty.refused}
	for _, id := range slices.Sorted(maps.Keys(s.dirty.actors)) {
		ev := s.actorEvents[id]
		d.Actors = append(d.Actors, ActorRecord{State: *s.state.actors[id], Events: ev[max(0, len(ev)-MaxActorEvents):]})
	}
	for k := range s.dirty.items {
		d.Items = append(d.Items, ItemRecord{State: *s.state.items[k], Events: s.events[k]})
	}
	slices.SortFunc(d.Items, func(a, b ItemRecord) int { return compareItemIDs(a.State.ID, b.State.ID) })
	if err := s.store.Save(ctx, d); errors.Is(err, ErrStoreGap) {
		// Another replica saved a shared index first: what this one
		// applied is there, or will be applied again from the log.
		return s.syncWithStore(ctx)
	} else if err != nil {
		return fmt.Errorf("save index: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restartAt(s.applied)
	return nil
}

// restartAt drops every record the State holds, with what changed since
// the last save, and makes at the applied position and the saved index's.
// Called with s.mu held.
func (s *Service) restartAt(at uint64) {
	s.dirty = newDelta(at)
	s.applied, s.state.next = at, at
	clear(s.state.actors)
	clear(s.state.items)
	clear(s.state.claims)
	clear(s.actorEvents)
	clear(s.events)
	clear(s.refused)
}

// syncWithStore makes sure the saved index ends where this Service's last
// save left it. With an index shared by replicas, another may have saved
// since. If it saved no further than this one applied, what this one holds
// is the index at its own applied position (the records it changed since
// its last save, over the saved index), so it saves from where the saved
// index ends. If it saved further, this one drops what it holds and goes
// on from there. Applying is deterministic, so either way the index comes
// out as one replica alone would have made it, and no reader sees it go
// back.
func (s *Service) syncWithStore(ctx context.Context) error {
	at, err := s.store.Applied(ctx)
	if err != nil {
		return fmt.Errorf("read the index's position: %w", err)
	}
	switch {
	case at == s.dirty.from:
		return nil
	case at <= s.applied:
		s.mu.Lock()
		s.dirty.from = at
		s.mu.Unlock()
	default:
		s.mu.Lock()
		from := s.applied
		s.restartAt(at)
		s.mu.Unlock()
		s.wake(from, at)
	}
	s.lastSave = time.Now()
	return nil
}

// Rebuild deletes the index in store and replays the whole log into it.
func Rebuild(ctx context.Context, cfg ServiceConfig) error {
	if err := cfg.Store.Reset(ctx); err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	s, err := NewService(ctx, cfg)
	if err != nil {
		return fmt.Errorf("rebuild: %w", err)
	}
	return s.Close()
}
