package provenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Now is the clock Submit checks event times against (no more than
	// MaxClockSkew ahead of it). Default time.Now.
	Now func() time.Time
}

// MaxClockSkew is how far an event's time may be ahead of the clock of the
// server it is submitted to: signers' clocks are not exact. Submit refuses
// an event further in the future (ErrTimeInFuture); a replay of the log
// never does, since the leaf was checked against the time it came in at.
const MaxClockSkew = 5 * time.Minute

// A Service validates signed events, appends them to the log and keeps the
// index derived from the log: every accepted event, applied in log order.
//
// Its work is in four files: submit.go, the write path (Submit parses,
// verifies, checks the rules, appends and waits for the applier);
// replay.go, the applier (it applies what the log gains, in log order,
// and saves the index); index.go, how the index is read (the records
// changed since the last save, over the Store); item.go, the read path of
// history pages and bundles.
//
// Events for different items are checked and appended in parallel and
// share the log's group commits; events for one item (or one actor's
// enrollment) are serialized.
type Service struct {
	log    merkle.Log
	store  Store
	trust  Trust
	opID   string
	op     note.Verifier
	logger *slog.Logger

	saveEvery    int
	saveInterval time.Duration
	pollInterval time.Duration
	now          func() time.Time

	locks keyLocks // serialize events per item or actor

	// mu guards what the applier changes: the records applied since the
	// last save (and those read for checks since), with their event
	// positions, the refusals since the last save, and the applied
	// position. See index.go.
	mu          sync.RWMutex
	state       *State
	events      map[itemKey][]uint64 // event positions of the items state holds
	actorEvents map[string][]uint64  // latest event positions of the actors state holds
	refused     map[uint64]error     // refusals since the last save
	applied     uint64               // log positions [0, applied) are applied
	dirty       delta                // changes since the last save
	lastSave    time.Time

	pendMu sync.Mutex
	// pending are the leaves Submit checked, by leaf hash, until applied:
	// the applier takes their checks instead of parsing and verifying
	// them again.
	pending map[merkle.Hash]*Checked

	// Waiting for a log position to be applied: each waiter is woken
	// alone, not all of them at every advance, and reads how far the
	// index is applied without s.mu, which the applier needs.
	waitMu     sync.Mutex
	waiters    map[uint64][]chan struct{} // by the position waited for
	appliedPos atomic.Uint64              // applied, published after s.mu

	views     *viewCache // the latest ItemView of recently asked items
	keyLeaves *leafCache // leaves enrolling and revoking actors' keys

	kick chan struct{}
	// ctx is the applier's: Close cancels it, so that a log read that
	// hangs does not hold Close up.
	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{}
	stopped chan struct{}
	closeMu sync.Mutex
	closed  bool
}

// delta collects what changed since the last save.
type delta struct {
	from    uint64
	actors  map[string]bool // record or events changed
	items   map[itemKey]ItemID
	claims  []ClaimRecord
	refused []Refusal
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
// lacks, and starts applying new ones. It reads no more of the index than
// those positions need.
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	applied, err := cfg.Store.Applied(ctx)
	if err != nil {
		return nil, fmt.Errorf("provenance: open index: %w", err)
	}
	state.next = applied
	s := &Service{
		log:          cfg.Log,
		store:        cfg.Store,
		trust:        cfg.Trust,
		opID:         state.opID,
		op:           state.op,
		logger:       cfg.Logger,
		saveEvery:    cmpOr(cfg.SaveEvery, 8192),
		saveInterval: cmpOr(cfg.SaveInterval, time.Second),
		pollInterval: cmpOr(cfg.PollInterval, time.Second),
		now:          cfg.Now,
		state:        state,
		events:       map[itemKey][]uint64{},
		actorEvents:  map[string][]uint64{},
		refused:      map[uint64]error{},
		applied:      applied,
		dirty:        newDelta(applied),
		lastSave:     time.Now(),
		waiters:      map[uint64][]chan struct{}{},
		pending:      map[merkle.Hash]*Checked{},
		views:        newViewCache(defaultViewCacheItems),
		keyLeaves:    newLeafCache(defaultKeyLeaves),
		kick:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		stopped:      make(chan struct{}),
	}
	s.appliedPos.Store(applied)
	// The applier outlives ctx, which only bounds the start.
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Catch up with the log before answering anyone.
	if err := s.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("provenance: replay the log: %w", err)
	}
	// A failed save (a full disk) keeps the changes for the next one,
	// as every save does; refusing to start would stop reads too.
	if err := s.save(ctx); err != nil {
		s.logger.Error("save index", "err", err)
	}
	go s.run()
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
	return delta{from: from, actors: map[string]bool{}, items: map[itemKey]ItemID{}}
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
	s.cancel()
	s.closeMu.Unlock()
	<-s.stopped
	// The applier has stopped, so this goroutine may save; the applier's
	// context is cancelled, so the last save has its own.
	return s.save(context.WithoutCancel(s.ctx))
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
	refused, err := s.refusedIn(ctx, from, to)
	if err != nil {
		return nil, from, fmt.Errorf("accepted events from %d: %w", from, err)
	}
	r := current{s}
	for i, leaf := range leaves {
		index := from + uint64(i)
		if refused[index] {
			continue
		}
		e, err := ParseEvent(leaf)
		if err != nil {
			// Applied leaves parse; a leaf that does not is refused.
			return nil, from, fmt.Errorf("accepted event %d: %w", index, err)
		}
		a := Applied{Index: index, LeafHash: merkle.LeafHash(leaf), Event: e}
		switch {
		case e.Actor == s.opID:
			a.Role = RoleOperator
		case e.Actor == BuyerID:
			a.Role = RoleBuyer
		default:
			as, _, err := r.actor(ctx, e.Actor)
			if err != nil {
				return nil, from, fmt.Errorf("accepted event %d: %w", index, err)
			}
			if as != nil {
				a.Role = as.Role
			}
		}
		if e.Kind == KindReceive {
			it, _, err := r.item(ctx, e.Item)
			if err != nil {
				return nil, from, fmt.Errorf("accepted event %d: %w", index, err)
			}
			if it != nil && it.DeliveredAt == index && !it.Delivered.IsZero() {
				a.Role = RoleBuyer
			}
		}
		events = append(events, a)
	}
	return events, to, nil
}

// refusedIn returns the applied log positions in [from, to) that the rules
// refused.
func (s *Service) refusedIn(ctx context.Context, from, to uint64) (map[uint64]bool, error) {
	saved, err := s.store.Refused(ctx, from, to)
	if err != nil {
		return nil, fmt.Errorf("read refusals: %w", err)
	}
	out := map[uint64]bool{}
	for _, r := range saved {
		out[r.Index] = true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i := range s.refused {
		if i >= from && i < to {
			out[i] = true
		}
	}
	return out, nil
}

// refusal returns why the rules refused the applied log position index,
// or nil if they accepted it.
func (s *Service) refusal(ctx context.Context, index uint64) (*RuleError, error) {
	s.mu.RLock()
	err := s.refused[index]
	s.mu.RUnlock()
	if err == nil {
		saved, err := s.store.Refused(ctx, index, index+1)
		if err != nil || len(saved) == 0 {
			return nil, err
		}
		return &RuleError{Index: index, Err: errors.New(saved[0].Reason)}, nil
	}
	var re *RuleError
	if errors.As(err, &re) {
		return re, nil
	}
	return &RuleError{Index: index, Err: err}, nil
}

// WaitApplied waits until the log position index is applied (the Service
// has applied more than index positions), ctx ends, or the Service is
// closed.
func (s *Service) WaitApplied(ctx context.Context, index uint64) error {
	return s.waitApplied(ctx, index)
}

// Actor returns an enrolled actor, or an error matching ErrNotFound.
func (s *Service) Actor(ctx context.Context, id string) (ActorState, error) {
	a, _, err := current{s}.actor(ctx, id)
	switch {
	case err != nil:
		return ActorState{}, err
	case a == nil:
		return ActorState{}, fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, id)
	}
	return *a, nil
}

// ActorEvents returns the latest accepted events (at most MaxActorEvents)
// of an enrolled actor, newest first: those it signed, and its enrollments
// and revocations. An unknown actor is an error matching ErrNotFound.
func (s *Service) ActorEvents(ctx context.Context, id string) ([]HistoryEvent, error) {
	a, indices, err := current{s}.actor(ctx, id)
	switch {
	case err != nil:
		return nil, err
	case a == nil:
		return nil, fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, id)
	}
	indices = indices[max(0, len(indices)-MaxActorEvents):]
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
		if e.Actor == s.opID {
			he.Role, he.ActorName = RoleOperator, ""
		}
		out = append(out, he)
	}
	return out, nil
}

// Trust returns what the Service's bundles are made for: the log origin,
// the log key and the operator key.
func (s *Service) Trust() Trust { return s.trust }
