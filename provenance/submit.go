package provenance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// Submit validates a signed event (the note bytes, verbatim), appends it to
// the log, applies it, and returns its receipt.
//
// An event the rules refuse returns a *RuleError and appends nothing. The
// very same event submitted again returns the first receipt, marked
// Duplicate, so a client may retry. An event the rules accepted on
// submission but refused when applied in log order (a conflicting event
// from another replica came first) is in the log, refused on every replica
// alike: Submit returns the *RuleError.
func (s *Service) Submit(ctx context.Context, leaf []byte) (Receipt, error) {
	checked, err := checkSubmitted(leaf)
	if err != nil {
		return Receipt{}, err
	}
	return s.submitChecked(ctx, checked)
}

// checkSubmitted parses a submitted leaf; one that is no event note is
// refused before it reaches the log.
func checkSubmitted(leaf []byte) (*Checked, error) {
	if err := merkle.CheckLeaf(leaf); err != nil {
		return nil, &RuleError{NotLogged: true, Err: &EventError{Field: "leaf", Reason: err.Error()}}
	}
	checked, err := NewChecked(leaf)
	if err != nil {
		return nil, &RuleError{NotLogged: true, Err: err}
	}
	return checked, nil
}

// submitChecked is Submit for a parsed leaf.
func (s *Service) submitChecked(ctx context.Context, checked *Checked) (Receipt, error) {
	leaf := checked.leaf
	e := checked.Event()
	defer s.locks.lock(lockKey(e))()

	leafHash := checked.LeafHash()
	dup, isDup, checkedTo, err := s.precheck(checked, leafHash)
	if err != nil && !isDup && s.catchUpWithLog(ctx, checkedTo) {
		// The index lagged the log (another replica of a shared log wrote
		// to it): refuse only what the whole log refuses.
		dup, isDup, _, err = s.precheck(checked, leafHash)
	}
	if err != nil {
		if isDup {
			r, err := s.receipt(ctx, dup, leafHash)
			r.Duplicate = true
			return r, err
		}
		var re *RuleError
		if errors.As(err, &re) {
			re.NotLogged = true
		}
		return Receipt{}, err
	}

	// The applier finds the check by the leaf's bytes (pendingKey), so it
	// need not parse or verify the leaf again.
	pendKey := s.pendingKey(leaf)
	s.pendMu.Lock()
	s.pending[pendKey] = checked
	s.pendMu.Unlock()
	proved, err := s.append(ctx, leaf, leafHash)
	if err != nil {
		s.pendMu.Lock()
		delete(s.pending, pendKey)
		s.pendMu.Unlock()
		return Receipt{}, fmt.Errorf("append %s: %w", e.Kind, err)
	}
	index := proved.Index
	select {
	case s.kick <- struct{}{}:
	default:
	}
	err = s.waitApplied(ctx, index)
	// The applier took the check if it applied this leaf; if the log found
	// the leaf there already (dedup), nobody will: drop it either way.
	s.pendMu.Lock()
	delete(s.pending, pendKey)
	s.pendMu.Unlock()
	if err != nil {
		return Receipt{}, err
	}
	s.mu.RLock()
	refusal := s.refused[index]
	s.mu.RUnlock()
	if refusal != nil {
		return Receipt{}, refusal
	}
	if proved.Proof != nil {
		return Receipt{
			Index: index, LeafHash: leafHash, Checkpoint: proved.Checkpoint,
			Proof: merkle.FormatProof(merkle.Proof{Index: index, Hashes: proved.Proof, Checkpoint: proved.Checkpoint.Note}),
		}, nil
	}
	return s.receipt(ctx, index, leafHash)
}

// append appends one leaf, whose leaf hash is leafHash, with its proof if
// the log proves what it appends (merkle.ProvingLog), which spares the
// receipt reading one.
func (s *Service) append(ctx context.Context, leaf []byte, leafHash merkle.Hash) (merkle.Proved, error) {
	if pl, ok := s.log.(merkle.ProvingLog); ok {
		p, err := pl.AppendProved(ctx, [][]byte{leaf}, []merkle.Hash{leafHash})
		if err != nil {
			return merkle.Proved{}, err
		}
		return p[0], nil
	}
	idx, err := s.log.Append(ctx, [][]byte{leaf})
	if err != nil {
		return merkle.Proved{}, err
	}
	return merkle.Proved{Index: idx[0]}, nil
}

// precheck checks a parsed leaf against the index, and finds the accepted
// event it repeats, if it is a retry. The index it checked against had
// applied the log positions [0, applied).
func (s *Service) precheck(checked *Checked, leafHash merkle.Hash) (dup uint64, isDup bool, applied uint64, err error) {
	// The signature check is CPU work (an Ed25519 verification), done
	// outside s.mu so that it never holds up the applier, which everyone
	// waits for; and by the verifiers, so that no more run at once than
	// there are CPUs, and the log's committer and the applier are not
	// queued behind them.
	s.mu.RLock()
	v, vkey, ok := s.state.checkKey(checked)
	s.mu.RUnlock()
	if ok && !checked.checkedUnder(vkey) {
		job := verifyJob{checked, v, vkey, verifyDone.Get().(chan struct{})}
		select {
		case s.verify <- job:
			<-job.done
		case <-s.stop:
			checked.verifyWith(v, vkey)
		}
		verifyDone.Put(job.done)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	err = s.state.Precheck(s.state.Next(), checked)
	dup, isDup = s.acceptedIndex(checked.Event(), leafHash)
	return dup, isDup, s.applied, err
}

// A verifyJob asks a verifier to check a signature.
type verifyJob struct {
	checked *Checked
	v       note.Verifier
	vkey    string
	done    chan struct{} // from verifyDone; the verifier sends on it once
}

// verifyDone holds the channels verifyJobs are answered on (buffered, so
// the verifier never waits), to be reused: a new one for every event was
// an allocation an event.
var verifyDone = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// verifier checks signatures until the Service closes. Long-lived
// goroutines do it, not each submitter: an Ed25519 verification needs a
// deeper stack than a fresh goroutine has, and growing one (a batch's
// workers are fresh) cost ~5% of provd's CPU under batch load.
func (s *Service) verifier() {
	for {
		select {
		case j := <-s.verify:
			j.checked.verifyWith(j.v, j.vkey)
			j.done <- struct{}{}
			// With checks queued, a verifier would never block, and would
			// keep its CPU until preempted (10 ms) while the committer,
			// the applier and page views wait: yield after each.
			runtime.Gosched()
		case <-s.stop:
			return
		}
	}
}

// catchUpWithLog applies the log up to its latest checkpoint, and reports
// whether the index then holds more than the positions [0, checkedTo) a
// check was made against: whether checking again may decide otherwise.
//
// It compares the checkpoint with checkedTo, not with what is applied now:
// the poller may have applied the rest of the log since the check, and
// the check must still be made again.
func (s *Service) catchUpWithLog(ctx context.Context, checkedTo uint64) bool {
	cp, err := s.log.Checkpoint(ctx)
	if err != nil || cp.Size <= checkedTo {
		return false
	}
	s.mu.RLock()
	behind := s.applied < cp.Size
	s.mu.RUnlock()
	if behind {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return s.waitApplied(ctx, cp.Size-1) == nil
}

// A lockID names what an event must be serialized with: its item, or the
// actor an enrollment or revocation is about. (A struct, not a string
// built for every event.)
type lockID struct {
	item  itemKey
	actor string
}

// lockKey returns what e must be serialized with.
func lockKey(e Event) lockID {
	switch {
	case e.Kind.IsItemEvent():
		return lockID{item: e.Item.key()}
	case e.Enroll != nil:
		return lockID{actor: e.Enroll.ID}
	case e.Revoke != nil:
		return lockID{actor: e.Revoke.ID}
	}
	return lockID{actor: e.Actor}
}

// acceptedIndex finds an accepted event with this leaf hash among those a
// retry of e could repeat: the item's latest event, or the enrollment or
// revocation of e's subject. Called with s.mu held.
func (s *Service) acceptedIndex(e Event, leafHash merkle.Hash) (uint64, bool) {
	switch {
	case e.Kind.IsItemEvent():
		if it, ok := s.state.Item(e.Item); ok && it.Last == leafHash {
			return it.LastIndex, true
		}
	case e.Enroll != nil || e.Revoke != nil:
		id := ""
		if e.Enroll != nil {
			id = e.Enroll.ID
		} else {
			id = e.Revoke.ID
		}
		a, ok := s.state.Actor(id)
		if !ok {
			return 0, false
		}
		// The latest enrollment or revocation of the actor.
		k := a.Keys[len(a.Keys)-1]
		at := k.From
		if k.Revoked {
			at = k.To
		}
		if s.leafHashAt(at) == leafHash {
			return at, true
		}
	}
	return 0, false
}

func (s *Service) leafHashAt(index uint64) merkle.Hash {
	leaves, err := s.log.Leaves(context.Background(), index, index+1)
	if err != nil || len(leaves) != 1 {
		return merkle.Hash{}
	}
	return merkle.LeafHash(leaves[0])
}

// waitApplied waits until the log position index is applied.
func (s *Service) waitApplied(ctx context.Context, index uint64) error {
	if s.appliedPos.Load() > index {
		return nil
	}
	s.waitMu.Lock()
	// wake stores the position before it takes waitMu: either it is
	// stored by now, or wake will find this waiter.
	if s.appliedPos.Load() > index {
		s.waitMu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.waiters[index] = append(s.waiters[index], ch)
	s.waitMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.dropWaiter(index, ch)
		return ctx.Err()
	case <-s.stopped:
		s.dropWaiter(index, ch)
		return errors.New("service closed")
	}
}

// dropWaiter forgets a waiter that gave up.
func (s *Service) dropWaiter(index uint64, ch chan struct{}) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	w := slices.DeleteFunc(s.waiters[index], func(c chan struct{}) bool { return c == ch })
	if len(w) == 0 {
		delete(s.waiters, index)
	} else {
		s.waiters[index] = w
	}
}

// receipt proves the leaf at index against the latest checkpoint.
func (s *Service) receipt(ctx context.Context, index uint64, leafHash merkle.Hash) (Receipt, error) {
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	p, err := s.log.InclusionProof(ctx, index, cp.Size)
	if err != nil {
		return Receipt{}, fmt.Errorf("receipt: %w", err)
	}
	return Receipt{
		Index:      index,
		LeafHash:   leafHash,
		Checkpoint: cp,
		Proof:      merkle.FormatProof(merkle.Proof{Index: index, Hashes: p, Checkpoint: cp.Note}),
	}, nil
}

// Actor returns an enrolled actor, or an error matching ErrNotFound.
func (s *Service) Actor(ctx context.Context, id string) (ActorState, error) {
	if err := ctx.Err(); err != nil {
		return ActorState{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.state.Actor(id)
	if !ok {
		return ActorState{}, fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, id)
	}
	return a, nil
}

// ActorEvents returns the latest accepted events (at most MaxActorEvents)
// of an enrolled actor, newest first: those it signed, and its enrollments
// and revocations. An unknown actor is an error matching ErrNotFound.
func (s *Service) ActorEvents(ctx context.Context, id string) ([]HistoryEvent, error) {
	s.mu.RLock()
	a, ok := s.state.Actor(id)
	indices := s.latestActorEvents(id)
	opID, _ := s.state.Operator()
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, id)
	}
	out := make([]HistoryEvent, 0, len(indices))
	for i := len(indices) - 1; i >= 0; i-- {
		leaf, err := s.leaf(ctx, indices[i])
		if err != nil {
			return nil, fmt.Errorf("events of %s: %w", id, err)
		}
		e, err := ParseEvent(leaf)
		if err != nil {
			return nil, fmt.Errorf("events of %s: event %d: %w", id, indices[i], err)
		}
		he := HistoryEvent{Applied: Applied{Index: indices[i], LeafHash: merkle.LeafHash(leaf), Event: e, Role: a.Role}, ActorName: a.Name}
		if e.Actor == opID {
			he.Role, he.ActorName = RoleOperator, ""
		}
		out = append(out, he)
	}
	return out, nil
}

// Trust returns what the Service's bundles are made for: the log origin,
// the log key and the operator key.
func (s *Service) Trust() Trust { return s.trust }

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
	c, err := s.buildItem(ctx, id, old)
	if err != nil {
		return ItemView{}, err
	}
	s.views.put(c)
	return c.view, nil
}

// buildItem builds the view of an item now. It takes what it can from old,
// a view of the same item built earlier: parsed events and leaves, which
// never change, and proofs, if against the same checkpoint size.
func (s *Service) buildItem(ctx context.Context, id ItemID, old *cachedView) (*cachedView, error) {
	s.mu.RLock()
	applied := s.applied
	st, ok := s.state.Item(id)
	indices := slices.Clone(s.events[id.key()])
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: item %s is not registered", ErrNotFound, id)
	}
	// The checkpoint is read after the state, so that it includes every
	// position the state was built from.
	cp, err := s.log.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
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
	var events []Event
	var hashes []merkle.Hash
	leafOf := map[uint64][]byte{}
	for _, i := range indices {
		if he, ok := oldEvents[i]; ok {
			events = append(events, he.Event)
			hashes = append(hashes, he.LeafHash)
			continue
		}
		leaf, err := s.leaf(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		e, err := ParseEvent(leaf)
		if err != nil {
			return nil, fmt.Errorf("history of %s: event %d: %w", id, i, err)
		}
		leafOf[i] = leaf
		events = append(events, e)
		hashes = append(hashes, merkle.LeafHash(leaf))
	}
	need := slices.Clone(indices)
	s.mu.RLock()
	opID, _ := s.state.Operator()
	for _, actor := range BundleActors(opID, events) {
		a, ok := s.state.Actor(actor)
		if !ok {
			continue
		}
		v.Actors = append(v.Actors, a)
		for _, k := range a.Keys {
			need = append(need, k.From)
			if k.Revoked && k.To < cp.Size {
				need = append(need, k.To)
			}
		}
	}
	for j, e := range events {
		he := HistoryEvent{Applied: Applied{Index: indices[j], LeafHash: hashes[j], Event: e}}
		switch a, ok := s.state.Actor(e.Actor); {
		case e.Actor == opID:
			he.Role = RoleOperator
		case ok:
			he.Role, he.ActorName = a.Role, a.Name
		default:
			he.Role = RoleBuyer
		}
		v.Events = append(v.Events, he)
	}
	s.mu.RUnlock()
	slices.Sort(need)
	need = slices.Compact(need)
	var unproved []int // entries without a proof against cp
	for _, i := range need {
		en := oldEntries[i]
		en.Index = i
		if en.Leaf == nil {
			if en.Leaf = leafOf[i]; en.Leaf == nil {
				if en.Leaf, err = s.leaf(ctx, i); err != nil {
					return nil, fmt.Errorf("history of %s: %w", id, err)
				}
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

// Bundle returns the proof bundle of an item (see BuildBundle), or an error
// matching ErrNotFound.
func (s *Service) Bundle(ctx context.Context, id ItemID) ([]byte, error) {
	v, err := s.Item(ctx, id)
	if err != nil {
		return nil, err
	}
	return BuildBundle(s.trust, id, v.Checkpoint.Note, v.Entries)
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
