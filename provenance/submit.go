package provenance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
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
	dup, isDup, checkedTo, err := s.precheck(ctx, checked)
	var re *RuleError
	if errors.As(err, &re) && s.catchUpWithLog(ctx, checkedTo) {
		// The index lagged the log (another replica of a shared log wrote
		// to it): refuse only what the whole log refuses.
		dup, isDup, _, err = s.precheck(ctx, checked)
	}
	if isDup {
		r, err := s.receipt(ctx, dup, leafHash)
		r.Duplicate = true
		return r, err
	}
	if err == nil {
		err = s.checkNotAhead(e)
	}
	if errors.As(err, &re) {
		re.NotLogged = true
	}
	if err != nil {
		return Receipt{}, err
	}

	// The applier finds the check by the leaf hash, so it need not parse
	// or verify the leaf again.
	s.pendMu.Lock()
	s.pending[leafHash] = checked
	s.pendMu.Unlock()
	proved, err := s.append(ctx, leaf, leafHash)
	if err != nil {
		s.pendMu.Lock()
		delete(s.pending, leafHash)
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
	delete(s.pending, leafHash)
	s.pendMu.Unlock()
	if err != nil {
		return Receipt{}, fmt.Errorf("wait for %s %d to be applied: %w", e.Kind, index, err)
	}
	if checked.applied {
		err = checked.outcome
	} else if re, err = s.refusal(ctx, index); err == nil && re != nil {
		err = re
	}
	if err != nil {
		return Receipt{}, err
	}
	if proved.Proof != nil {
		return Receipt{
			Index: index, LeafHash: leafHash, Checkpoint: proved.Checkpoint,
			Proof: merkle.FormatProof(merkle.Proof{Index: index, Hashes: proved.Proof, Checkpoint: proved.Checkpoint.Note}),
		}, nil
	}
	return s.receipt(ctx, index, leafHash)
}

// checkNotAhead refuses an event whose time is more than MaxClockSkew
// ahead of the Service's clock. It is the one check that reads a clock,
// so it is made on submission and never on replay: a leaf in the log was
// accepted against the time it came in at, and a replay at any later time
// (or on a replica whose clock is behind) must accept it all the same. A
// retry of an accepted event is answered as a duplicate before this check,
// whatever the clock says now.
func (s *Service) checkNotAhead(e Event) error {
	now := s.now()
	if !e.Time.After(now.Add(MaxClockSkew)) {
		return nil
	}
	return &RuleError{Kind: e.Kind, Item: e.Item, Actor: e.Actor,
		Err: &TimeError{Rule: ErrTimeInFuture, Time: e.Time, Bound: now.Truncate(time.Second)}}
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

// precheck checks a parsed leaf against the index as applied now:
// whether it repeats an accepted event (a retry), then its signature,
// under the key the rules require, then the custody rules. The index it
// checked against had applied the log positions [0, applied). A refusal is
// a *RuleError; any other error is a failure to read the index.
//
// The records the check reads are read first, and the check runs on them
// alone: no lock is held while the index is read or the signature
// verified.
func (s *Service) precheck(ctx context.Context, c *Checked) (dup uint64, isDup bool, applied uint64, err error) {
	st, applied, err := s.checkState(ctx, c.event)
	if err != nil {
		return 0, false, applied, fmt.Errorf("check %s: %w", c.event.Kind, err)
	}
	if dup, isDup = acceptedIndex(st, c); isDup {
		return dup, true, applied, nil
	}
	v, vkey, err := st.signerKey(c)
	if err == nil {
		err = c.verify(v, vkey)
	}
	if err != nil {
		e := c.event
		return 0, false, applied, &RuleError{Kind: e.Kind, Item: e.Item, Actor: e.Actor, Err: err}
	}
	return 0, false, applied, st.Precheck(c)
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

// acceptedIndex finds in st the accepted event c repeats, if it is a
// retry: the item's latest event, or the latest enrollment or revocation
// of c's subject.
func acceptedIndex(st *State, c *Checked) (uint64, bool) {
	e := c.event
	switch {
	case e.Kind.IsItemEvent():
		if it, ok := st.Item(e.Item); ok && it.Last == c.leafHash {
			return it.LastIndex, true
		}
	case e.Enroll != nil || e.Revoke != nil:
		id := ""
		if e.Enroll != nil {
			id = e.Enroll.ID
		} else {
			id = e.Revoke.ID
		}
		a, ok := st.Actor(id)
		if !ok || a.Latest != c.leafHash {
			return 0, false
		}
		k := a.Keys[len(a.Keys)-1]
		if k.Revoked {
			return k.To, true
		}
		return k.From, true
	}
	return 0, false
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

// keyLocks are mutexes by key, held only while some goroutine holds or
// waits for one: one per item or actor with an event in flight, so that
// events for different items never wait for each other.
type keyLocks struct {
	mu sync.Mutex
	m  map[lockID]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by keyLocks.mu
}

// lock locks key's mutex and returns the function that unlocks it.
func (k *keyLocks) lock(key lockID) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[lockID]*keyLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
