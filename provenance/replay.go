package provenance

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// run applies what the log gains, from this Service's submissions or from
// other writers. A second goroutine saves the index, so that a slow save
// never holds up applying.
func (s *Service) run() {
	defer close(s.stopped)
	ctx := s.ctx
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		tick := time.NewTicker(s.saveInterval)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			case <-s.saveNow:
			}
			if err := s.save(ctx); err != nil {
				s.logger.Error("save index", "err", err)
			}
		}
	}()
	defer func() { <-saverDone }()
	poll := time.NewTicker(s.pollInterval)
	defer poll.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-poll.C:
		}
		if err := s.catchUp(ctx); err != nil {
			s.logger.Error("apply log", "err", err)
		}
	}
}

// catchUp applies every log position up to the latest checkpoint.
func (s *Service) catchUp(ctx context.Context) error {
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	s.mu.RLock()
	from := s.applied
	s.mu.RUnlock()
	const chunk = 1024
	for from < cp.Size {
		to := min(cp.Size, from+chunk)
		leaves, err := s.leavesFor(ctx, from, to)
		if err != nil {
			return err
		}
		s.applyLeaves(from, leaves)
		from = to
		if s.dirtyCount() >= uint64(s.saveEvery) {
			select {
			case s.saveNow <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// A logEntry is a leaf to apply, and what Submit's check of it found, if
// this process submitted it.
type logEntry struct {
	leaf    []byte
	checked *Checked
}

// leavesFor returns the leaves [from, to) from the log, with what Submit
// found when it checked them, if it did.
func (s *Service) leavesFor(ctx context.Context, from, to uint64) ([]logEntry, error) {
	leaves, err := s.log.Leaves(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]logEntry, len(leaves))
	for i, leaf := range leaves {
		out[i].leaf = leaf
		h := merkle.LeafHash(leaf)
		s.pendMu.Lock()
		if c, ok := s.pending[h]; ok {
			out[i].checked = c
			delete(s.pending, h)
		}
		s.pendMu.Unlock()
	}
	return out, nil
}

// applyLeaves applies the entries at positions first, first+1, ... in order.
func (s *Service) applyLeaves(first uint64, entries []logEntry) {
	s.mu.Lock()
	from := s.applied
	for i, en := range entries {
		index := first + uint64(i)
		if index != s.applied {
			continue // applied already (a concurrent catch-up)
		}
		var a Applied
		var err error
		if en.checked != nil {
			a, err = s.state.ApplyChecked(index, en.checked)
		} else {
			a, err = s.state.Apply(index, en.leaf)
		}
		if err != nil {
			s.refused[index] = err
			s.dirty.refused = append(s.dirty.refused, Refusal{Index: index, Reason: err.Error()})
		} else {
			s.noteApplied(a)
		}
		s.applied = index + 1
	}
	to := s.applied
	s.mu.Unlock()
	s.wake(from, to)
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
func (s *Service) noteApplied(a Applied) {
	e := a.Event
	s.noteActorEvent(e.Actor, a.Index)
	switch {
	case e.Kind == KindEnroll:
		s.dirty.actors[e.Enroll.ID] = true
		s.noteActorEvent(e.Enroll.ID, a.Index)
	case e.Kind == KindRevoke:
		s.dirty.actors[e.Revoke.ID] = true
		s.noteActorEvent(e.Revoke.ID, a.Index)
	case e.Kind.IsItemEvent():
		k := e.Item.key()
		s.events[k] = append(s.events[k], a.Index)
		s.dirty.items[k] = e.Item
		if a.Claim != nil {
			s.dirty.claims = append(s.dirty.claims, ClaimRecord{Claim: *a.Claim, Item: e.Item})
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
	// take the last MaxActorEvents (latestActorEvents).
	ev := append(s.actorEvents[id], index)
	if len(ev) > 2*MaxActorEvents {
		ev = slices.Clone(ev[len(ev)-MaxActorEvents:])
	}
	s.actorEvents[id] = ev
	s.dirty.actorEvents[id] = true
}

// latestActorEvents returns a copy of the last MaxActorEvents positions
// of actor id's events. Called with s.mu held.
func (s *Service) latestActorEvents(id string) []uint64 {
	ev := s.actorEvents[id]
	return slices.Clone(ev[max(0, len(ev)-MaxActorEvents):])
}

func (s *Service) dirtyCount() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied - s.dirty.from
}

// save writes what changed since the last save to the Store. Saves are
// serialized, so deltas reach the Store in order; a failed save puts its
// changes back for the next one.
func (s *Service) save(ctx context.Context) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	if s.applied == s.dirty.from {
		s.mu.Unlock()
		return nil
	}
	taken := s.dirty
	d := Delta{From: taken.from, To: s.applied, Claims: taken.claims, Refused: taken.refused}
	for _, id := range slices.Sorted(maps.Keys(taken.actors)) {
		a, _ := s.state.Actor(id)
		d.Actors = append(d.Actors, a)
	}
	for k, id := range taken.items {
		it, _ := s.state.Item(id)
		d.Items = append(d.Items, ItemRecord{State: it, Events: slices.Clone(s.events[k])})
	}
	for _, id := range slices.Sorted(maps.Keys(taken.actorEvents)) {
		d.ActorEvents = append(d.ActorEvents, ActorEvents{ID: id, Events: s.latestActorEvents(id)})
	}
	s.dirty = newDelta(s.applied)
	s.mu.Unlock()
	if err := s.store.Save(ctx, d); err != nil {
		s.mu.Lock()
		maps.Copy(taken.actors, s.dirty.actors)
		maps.Copy(taken.items, s.dirty.items)
		maps.Copy(taken.actorEvents, s.dirty.actorEvents)
		taken.claims = append(taken.claims, s.dirty.claims...)
		taken.refused = append(taken.refused, s.dirty.refused...)
		s.dirty = taken
		s.mu.Unlock()
		return fmt.Errorf("save index: %w", err)
	}
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
