package provenance

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/sync/errgroup"
)

// An ItemView is an item's history as this server has it: the item, its
// events in log order, the actors they rely on, and every log entry a
// verifier needs (the item's events, and the enrollments and revocations of
// those actors), each with an inclusion proof against one checkpoint.
//
// The server does not re-verify what it applied; a client verifies the
// bundle made from it (see VerifyBundle).
type ItemView struct {
	History
	Entries []BundleEntry
}

// Item returns the history of an item, with proofs, or an error matching
// ErrNotFound. The view shows the index as it is now (every position the
// Service has applied) and its proofs are against the log's latest
// checkpoint.
//
// Views are cached (see viewCache): callers share the returned view and
// must not modify it.
func (s *Service) Item(ctx context.Context, id ItemID) (ItemView, error) {
	s.mu.RLock()
	applied := s.applied
	s.mu.RUnlock()
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		return ItemView{}, fmt.Errorf("history of %s: %w", id, err)
	}
	old, fresh := s.views.get(id, applied, cp.Size)
	if fresh {
		return old.view, nil
	}
	c, err := s.buildItem(ctx, id, old, cp)
	if err != nil {
		return ItemView{}, err
	}
	s.views.put(c)
	return c.view, nil
}

// buildItem builds the view of an item now. It takes what it can from old,
// a view of the same item built earlier: parsed events and leaves, which
// never change, and proofs, if against the same checkpoint size. cp is a
// checkpoint read before the item's state; it is used if it holds every
// event of the item.
func (s *Service) buildItem(ctx context.Context, id ItemID, old *cachedView, cp merkle.Checkpoint) (*cachedView, error) {
	s.mu.RLock()
	applied := s.applied
	s.mu.RUnlock()
	r := current{s}
	stp, indices, err := r.item(ctx, id)
	switch {
	case err != nil:
		return nil, fmt.Errorf("history of %s: %w", id, err)
	case stp == nil:
		return nil, fmt.Errorf("%w: item %s is not registered", ErrNotFound, id)
	}
	st := *stp
	// The proofs need a checkpoint that includes every position the state
	// was built from. The caller's, read before the state, is one unless
	// the item changed since; then a new one is read, after the state. On
	// a remote log each checkpoint read is a round trip: most pages make one.
	if st.LastIndex >= cp.Size {
		if cp, err = s.log.Checkpoint(ctx); err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
	}
	oldEvents := map[uint64]HistoryEvent{}
	oldEntries := map[uint64]BundleEntry{}
	if old != nil {
		for _, he := range old.view.Events {
			oldEvents[he.Index] = he
		}
		for _, en := range old.view.Entries {
			if old.size != cp.Size {
				en.Proof = nil
			}
			oldEntries[en.Index] = en
		}
	}
	v := ItemView{History: History{Item: id, State: st, Checkpoint: cp}}
	var unread []uint64
	for _, i := range indices {
		if _, ok := oldEvents[i]; !ok {
			unread = append(unread, i)
		}
	}
	leafOf, err := s.leavesAt(ctx, unread)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	var events []Event
	var hashes []merkle.Hash
	for _, i := range indices {
		if he, ok := oldEvents[i]; ok {
			events = append(events, he.Event)
			hashes = append(hashes, he.LeafHash)
			continue
		}
		leaf := leafOf[i]
		e, err := ParseEvent(leaf)
		if err != nil {
			return nil, fmt.Errorf("history of %s: event %d: %w", id, i, err)
		}
		leafOf[i] = leaf
		events = append(events, e)
		hashes = append(hashes, merkle.LeafHash(leaf))
	}
	need := slices.Clone(indices)
	actors := map[string]*ActorState{}
	for _, aid := range BundleActors(s.opID, events) {
		a, _, err := r.actor(ctx, aid)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		if a == nil {
			continue
		}
		actors[aid] = a
		v.Actors = append(v.Actors, *a)
		for _, k := range a.Keys {
			need = append(need, k.From)
			if k.Revoked && k.To < cp.Size {
				need = append(need, k.To)
			}
		}
	}
	for j, e := range events {
		he := HistoryEvent{Applied: Applied{Index: indices[j], LeafHash: hashes[j], Event: e}}
		switch a := actors[e.Actor]; {
		case e.Actor == s.opID:
			he.Role = RoleOperator
		case a != nil:
			he.Role, he.ActorName = a.Role, a.Name
		default:
			he.Role = RoleBuyer
		}
		v.Events = append(v.Events, he)
	}
	slices.Sort(need)
	need = slices.Compact(need)
	// The entries not read yet are the actors' keys.
	unread = unread[:0]
	keyLeaf := map[uint64][]byte{}
	for _, i := range need {
		if oldEntries[i].Leaf != nil || leafOf[i] != nil {
			continue
		}
		if leaf, ok := s.keyLeaves.get(i); ok {
			keyLeaf[i] = leaf
			continue
		}
		unread = append(unread, i)
	}
	read, err := s.leavesAt(ctx, unread)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	for i, leaf := range read {
		s.keyLeaves.put(i, leaf)
		keyLeaf[i] = leaf
	}
	var unproved []int // entries without a proof against cp
	for _, i := range need {
		en := oldEntries[i]
		en.Index = i
		if en.Leaf == nil {
			if en.Leaf = leafOf[i]; en.Leaf == nil {
				en.Leaf = keyLeaf[i]
			}
		}
		if en.Proof == nil {
			unproved = append(unproved, len(v.Entries))
		}
		v.Entries = append(v.Entries, en)
	}
	if err := s.prove(ctx, v.Entries, unproved, cp.Size); err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	return &cachedView{id: id, applied: applied, size: cp.Size, view: v}, nil
}

// prove gives the entries at the positions unproved their proofs in the
// tree of the given size, in one call to the log when it can.
func (s *Service) prove(ctx context.Context, entries []BundleEntry, unproved []int, size uint64) error {
	if len(unproved) == 0 {
		return nil
	}
	indexes := make([]uint64, len(unproved))
	for j, k := range unproved {
		indexes[j] = entries[k].Index
	}
	proofs, err := merkle.InclusionProofs(ctx, s.log, indexes, size)
	if err != nil {
		return fmt.Errorf("proofs of %v: %w", indexes, err)
	}
	for j, k := range unproved {
		entries[k].Proof = proofs[j]
	}
	return nil
}

func (s *Service) leaf(ctx context.Context, index uint64) ([]byte, error) {
	leaves, err := s.log.Leaves(ctx, index, index+1)
	if err != nil {
		return nil, err
	}
	return leaves[0], nil
}

// leafCalls bounds the Leaves calls leavesAt makes at once.
const leafCalls = 8

// leavesAt returns the leaves at the given positions (sorted), read with
// one Leaves call for each run of consecutive positions, the calls at the
// same time: on a remote log each call is a round trip, and a page needs
// leaves from all over the log.
func (s *Service) leavesAt(ctx context.Context, indexes []uint64) (map[uint64][]byte, error) {
	out := make(map[uint64][]byte, len(indexes))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(leafCalls)
	for len(indexes) > 0 {
		n := 1
		for n < len(indexes) && indexes[n] == indexes[0]+uint64(n) {
			n++
		}
		start := indexes[0]
		indexes = indexes[n:]
		g.Go(func() error {
			leaves, err := s.log.Leaves(gctx, start, start+uint64(n))
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for j, leaf := range leaves {
				out[start+uint64(j)] = leaf
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Bundle returns the proof bundle of an item (see BuildBundle), or an error
// matching ErrNotFound.
func (s *Service) Bundle(ctx context.Context, id ItemID) ([]byte, error) {
	v, err := s.Item(ctx, id)
	if err != nil {
		return nil, err
	}
	return BuildBundle(s.trust, id, v.Checkpoint.Note, v.Entries)
}
