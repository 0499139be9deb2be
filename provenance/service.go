package provenance

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// ServiceConfig carries everything a Service needs.
type ServiceConfig struct {
	Log   merkle.Log
	Store Store
	// Trust names the log (origin and checkpoint key) and the operator key
	// the Service enforces and that its bundles are made for.
	Trust  Trust
	Logger *slog.Logger
	// SaveEvery and SaveInterval bound how far the saved index may lag the
	// log: a save happens after SaveEvery applied positions or SaveInterval,
	// whichever comes first. Defaults 8192 and 1s. A crash loses nothing:
	// the lag is replayed from the log on the next start.
	SaveEvery    int
	SaveInterval time.Duration
	// PollInterval is how often the Service looks for leaves appended by
	// others (other replicas of a shared log). Default 1s.
	PollInterval time.Duration
}

// A Service validates signed events, appends them to the log and keeps the
// index derived from the log: every accepted event, applied in log order.
//
// Events for different items are checked and appended in parallel and
// share the log's group commits; events for one item (or one actor's
// enrollment) are serialized.
type Service struct {
	log    merkle.Log
	store  Store
	trust  Trust
	logger *slog.Logger

	saveEvery    int
	saveInterval time.Duration
	pollInterval time.Duration

	locks  keyLocks       // serialize events per item or actor
	verify chan verifyJob // to the signature checkers, one per CPU

	mu     sync.RWMutex
	state  *State
	events map[itemKey][]uint64 // accepted events per item, in log order
	// actorEvents are the latest accepted events of each enrolled actor:
	// those it signed and its enrollments and revocations, in log order.
	actorEvents map[string][]uint64
	refused     map[uint64]error // refusals found on replay
	applied     uint64           // log positions [0, applied) are applied
	dirty       delta            // changes since the last save
	saveMu      sync.Mutex       // serializes saves

	pendMu sync.Mutex
	// pending are the leaves Submit checked, until applied, by pendingKey.
	pending  map[uint64]*Checked
	pendSeed maphash.Seed

	// Waiting for a log position to be applied: each waiter is woken
	// alone, not all of them at every advance, and reads how far the
	// index is applied without s.mu, which the applier needs.
	waitMu     sync.Mutex
	waiters    map[uint64][]chan struct{} // by the position waited for
	appliedPos atomic.Uint64              // applied, published after s.mu

	views *viewCache // the latest ItemView of recently asked items

	kick    chan struct{}
	saveNow chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	closeMu sync.Mutex
	closed  bool
}

// delta collects what changed since the last save.
type delta struct {
	from        uint64
	actors      map[string]bool
	actorEvents map[string]bool
	items       map[itemKey]ItemID
	claims      []ClaimRecord
	refused     []Refusal
}

// A Receipt is the answer to an accepted event: where it is in the log, and
// the proof of it.
type Receipt struct {
	Index      uint64
	LeafHash   merkle.Hash
	Checkpoint merkle.Checkpoint
	// Proof is the event's C2SP tlog-proof@v1 against Checkpoint.
	Proof []byte
	// Duplicate is true if the very same event was in the log already, so
	// nothing was appended.
	Duplicate bool
}

// NewService opens the index in cfg.Store, replays the log positions it
// lacks, and starts applying new ones.
func NewService(ctx context.Context, cfg ServiceConfig) (*Service, error) {
	if cfg.Log == nil || cfg.Store == nil {
		return nil, errors.New("provenance: service needs a log and a store")
	}
	if _, err := note.NewVerifier(cfg.Trust.LogKey); err != nil {
		return nil, fmt.Errorf("provenance: log key: %w", err)
	}
	state, err := NewState(cfg.Trust.OperatorKey)
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		log:          cfg.Log,
		store:        cfg.Store,
		trust:        cfg.Trust,
		logger:       cfg.Logger,
		saveEvery:    cmpOr(cfg.SaveEvery, 8192),
		saveInterval: cmpOr(cfg.SaveInterval, time.Second),
		pollInterval: cmpOr(cfg.PollInterval, time.Second),
		state:        state,
		events:       map[itemKey][]uint64{},
		actorEvents:  map[string][]uint64{},
		refused:      map[uint64]error{},
		waiters:      map[uint64][]chan struct{}{},
		pending:      map[uint64]*Checked{},
		pendSeed:     maphash.MakeSeed(),
		views:        newViewCache(defaultViewCacheItems),
		verify:       make(chan verifyJob),
		kick:         make(chan struct{}, 1),
		saveNow:      make(chan struct{}, 1),
		stop:         make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	snap, err := cfg.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	if err := s.state.restore(snap); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	for _, it := range snap.Items {
		s.events[it.State.ID.key()] = it.Events
	}
	for _, a := range snap.ActorEvents {
		s.actorEvents[a.ID] = a.Events
	}
	for _, r := range snap.Refused {
		s.refused[r.Index] = errors.New(r.Reason)
	}
	s.applied = snap.Applied
	s.appliedPos.Store(s.applied)
	s.dirty = newDelta(s.applied)
	// Catch up with the log before answering anyone.
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("provenance: replay the log: %w", err)
	}
	// A failed save (a full disk) keeps the changes for the saver, which
	// retries, as it does for every save: the index in memory is whole,
	// and refusing to start would stop reads too.
	if err := s.save(ctx); err != nil {
		s.logger.Error("save index", "err", err)
	}
	go s.run()
	for range runtime.GOMAXPROCS(0) {
		go s.verifier()
	}
	return s, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func newDelta(from uint64) delta {
	return delta{from: from, actors: map[string]bool{}, actorEvents: map[string]bool{}, items: map[itemKey]ItemID{}}
}

// Close stops applying new log positions and saves the index.
func (s *Service) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	s.closeMu.Unlock()
	<-s.stopped
	return s.save(context.Background())
}

// run applies what the log gains, from this Service's submissions or from
// other writers. A second goroutine saves the index, so that a slow save
// never holds up applying.
func (s *Service) run() {
	defer close(s.stopped)
	ctx := context.Background()
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
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	for i, leaf := range leaves {
		out[i].leaf = leaf
		if len(s.pending) == 0 {
			continue
		}
		k := s.pendingKey(leaf)
		if c, ok := s.pending[k]; ok && string(c.leaf) == string(leaf) {
			out[i].checked = c
			delete(s.pending, k)
		}
	}
	return out, nil
}

// pendingKey is the key of a leaf in s.pending: a hash of it far cheaper
// than its SHA-256 leaf hash, which the applier would compute for every
// leaf it reads. Two pending leaves with one key only cost the applier a
// full check of one of them: it compares the leaf bytes before it takes a
// check.
func (s *Service) pendingKey(leaf []byte) uint64 { return maphash.Bytes(s.pendSeed, leaf) }

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
	// exceeded: trimming at every event copied the list every time (a
	// busy courier's 100 positions, in the applier, which everyone waits
	// for). Readers take the last MaxActorEvents (latestActorEvents).
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

// keyLocks are mutexes by key, held only while some goroutine holds or
// waits for one: one per item or actor with an event in flight. (4,096
// striped mutexes made about one item in eight of BenchmarkSubmit's 1,024
// wait for another item's events.)
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

// Accepted returns the events accepted at log positions [from, next), in
// log order, where next is at most from+limit and never past what the
// Service has applied: a follower (an escrow hook, a mirror) reads the log
// through it, and asks again from next. Positions the rules refused are
// skipped. It does not wait: when nothing new is applied, it returns no
// events and next == from; WaitApplied waits for more.
//
// Each Applied carries the signer's Role as the index has it now (its
// latest enrollment); the receive that delivered an item to its buyer
// always has RoleBuyer, since the item records its position.
func (s *Service) Accepted(ctx context.Context, from uint64, limit int) (events []Applied, next uint64, err error) {
	if limit <= 0 {
		limit = 1024
	}
	s.mu.RLock()
	to := min(s.applied, from+uint64(limit))
	s.mu.RUnlock()
	if from >= to {
		return nil, from, ctx.Err()
	}
	leaves, err := s.log.Leaves(ctx, from, to)
	if err != nil {
		return nil, from, fmt.Errorf("accepted events from %d: %w", from, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	opID, _ := s.state.Operator()
	for i, leaf := range leaves {
		index := from + uint64(i)
		if s.refused[index] != nil {
			continue
		}
		e, err := ParseEvent(leaf)
		if err != nil {
			// Applied leaves parse; a refused one is in s.refused.
			return nil, from, fmt.Errorf("accepted event %d: %w", index, err)
		}
		a := Applied{Index: index, LeafHash: merkle.LeafHash(leaf), Event: e}
		switch as, ok := s.state.Actor(e.Actor); {
		case e.Actor == opID:
			a.Role = RoleOperator
		case e.Actor == BuyerID:
			a.Role = RoleBuyer
		case ok:
			a.Role = as.Role
		}
		if e.Kind == KindReceive {
			if it, ok := s.state.Item(e.Item); ok && it.DeliveredAt == index && !it.Delivered.IsZero() {
				a.Role = RoleBuyer
			}
		}
		events = append(events, a)
	}
	return events, to, nil
}

// WaitApplied waits until the log position index is applied (the Service
// has applied more than index positions), ctx ends, or the Service is
// closed.
func (s *Service) WaitApplied(ctx context.Context, index uint64) error {
	return s.waitApplied(ctx, index)
}
