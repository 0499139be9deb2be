package provenance

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// A Status is where an item stands.
type Status string

// The statuses of an item.
const (
	StatusInCustody Status = "in custody" // held by its custodian, no handoff pending
	StatusInTransit Status = "in transit" // a handoff is pending
	StatusDelivered Status = "delivered"  // received by a buyer
	StatusDisputed  Status = "disputed"   // a dispute is open
)

// A KeyWindow is one key an actor held and the log positions [From, To) at
// which its signatures count. To is meaningful only if Revoked.
type KeyWindow struct {
	Key     string
	From    uint64
	To      uint64
	Revoked bool
	// Enrolled is the time of the enrollment at From: no event signed
	// with the key may say it happened earlier.
	Enrolled time.Time
}

// ActorState is an enrolled actor as the log left it: its latest
// enrollment, and every key it ever held.
type ActorState struct {
	Actor
	Revoked bool        // the latest key is revoked
	Keys    []KeyWindow // in log order; the last is the current one
	// Latest is the leaf hash of the actor's latest enrollment or
	// revocation, so that a retry of it is recognized without reading the
	// log.
	Latest merkle.Hash
}

// A PendingHandoff is custody offered but not yet received.
type PendingHandoff struct {
	Index uint64 // log position of the handoff
	To    string // the named receiver, or "" for a claim
	Claim [sha256.Size]byte
	Salt  []byte
}

// An OpenDispute is a dispute not yet ruled on.
type OpenDispute struct {
	Index  uint64
	By     string
	Reason string
	Was    Status // the status the ruling restores
}

// ItemState is an item as the log left it.
type ItemState struct {
	ID          ItemID
	Product     string
	Lot         string
	Description string

	RegisteredBy string
	Registered   uint64 // log position of the register event
	Custodian    string // actor id, or BuyerID once a buyer received it
	Status       Status
	Pending      *PendingHandoff // nil unless StatusInTransit (or disputed while in transit)
	Dispute      *OpenDispute    // nil unless StatusDisputed
	Parties      []string        // sorted ids of every actor that held custody (BuyerID for a buyer)
	BuyerKey     string          // the one-off key of the buyer who received it, if any
	Delivered    time.Time       // event time of the buyer's receive
	DeliveredAt  uint64          // its log position

	Last      merkle.Hash // leaf hash of the latest event: the next event's prev
	LastIndex uint64
	LastTime  time.Time // time of the latest event: the next one may not be earlier
	Events    int
}

// Applied describes an accepted event.
type Applied struct {
	Index    uint64
	LeafHash merkle.Hash
	Event    Event
	Role     Role // the signer's role at that position
	// Claim is the claim a buyer's receive used up, nil for other events.
	Claim *[sha256.Size]byte
}

// State is what a prefix of the log establishes about the records it
// holds: enrolled actors and their key windows, items, and used claim
// codes. Its zero value is not usable; call NewState.
//
// Apply is a deterministic function of the state and the next leaf: every
// replica replaying the same log reaches the same State. A refused leaf
// leaves the State unchanged. State is not safe for concurrent use.
//
// A State that replays a whole log (a bundle's) holds every record. The
// Service's holds only the records it changed since its last save and
// those it read for its latest checks: before checking a leaf, it loads
// from the saved index what the leaf's check reads (Fill). A record held
// as nil (or a claim held as the zero ItemID) is known not to exist.
type State struct {
	opID   string
	opKey  string
	op     note.Verifier
	next   uint64
	actors map[string]*ActorState
	items  map[itemKey]*ItemState
	claims map[[sha256.Size]byte]ItemID
}

// NewState returns the empty state of a log whose operator's verifier key
// is operatorKey (pinned: the operator is never enrolled). The key's name,
// which must be a valid actor id (OperatorID is recommended), is the
// operator's actor id and cannot be enrolled.
func NewState(operatorKey string) (*State, error) {
	v, err := note.NewVerifier(operatorKey)
	if err != nil {
		return nil, fmt.Errorf("operator key: %w", err)
	}
	if reason := actorIDReason(v.Name()); reason != "" || v.Name() == BuyerID {
		return nil, fmt.Errorf("operator key name %q is not a usable actor id", v.Name())
	}
	return &State{
		opID: v.Name(), opKey: operatorKey, op: v,
		actors: map[string]*ActorState{},
		items:  map[itemKey]*ItemState{},
		claims: map[[sha256.Size]byte]ItemID{},
	}, nil
}

// Operator returns the operator's actor id and verifier key.
func (s *State) Operator() (id, key string) { return s.opID, s.opKey }

// Next returns the lowest log index the next event may have: one past the
// last event applied.
func (s *State) Next() uint64 { return s.next }

// Actor returns the enrolled actor id. Its Keys must not be modified.
func (s *State) Actor(id string) (ActorState, bool) {
	a := s.actors[id]
	if a == nil {
		return ActorState{}, false
	}
	return *a, true
}

// Item returns the state of item id. Its slices and pointers must not be
// modified.
func (s *State) Item(id ItemID) (ItemState, bool) {
	it := s.items[id.key()]
	if it == nil {
		return ItemState{}, false
	}
	return *it, true
}

// Actors returns every enrolled actor, sorted by id.
func (s *State) Actors() []ActorState {
	out := make([]ActorState, 0, len(s.actors))
	for _, id := range slices.Sorted(maps.Keys(s.actors)) {
		if a := s.actors[id]; a != nil {
			out = append(out, *a)
		}
	}
	return out
}

// Items returns every registered item, sorted by GTIN then serial.
func (s *State) Items() []ItemState {
	out := make([]ItemState, 0, len(s.items))
	for _, it := range s.items {
		if it != nil {
			out = append(out, *it)
		}
	}
	slices.SortFunc(out, func(a, b ItemState) int { return compareItemIDs(a.ID, b.ID) })
	return out
}

// Clone returns an independent copy of s. It copies the maps (records are
// shared, as Apply replaces rather than modifies them), so it costs time
// linear in the number of actors and items.
func (s *State) Clone() *State {
	c := *s
	c.actors = maps.Clone(s.actors)
	c.items = maps.Clone(s.items)
	c.claims = maps.Clone(s.claims)
	return &c
}

// Check reports whether the leaf at log position index would be accepted,
// without changing s. It returns what Apply would.
func (s *State) Check(index uint64, leaf []byte) (Applied, error) {
	c, err := NewChecked(leaf)
	if err != nil {
		return Applied{}, &RuleError{Index: index, Err: err}
	}
	var scratch ItemState
	a, _, err := s.check(index, c, &scratch)
	return a, err
}

// A Checked is an event leaf on its way through the Service: parsed once
// (NewChecked), its signature verified once under the key the rules
// require (verify), checked against the rules before it is appended
// (Precheck) and applied at the log position it got (ApplyChecked). The
// rules verify the signature again only if they require another key at
// that position.
type Checked struct {
	leaf     []byte
	leafHash merkle.Hash
	event    Event
	sig      leafSig
	vkey     string // the verifier key the signature verified under, once it did
	// badKey is a verifier key the signature failed under, and badSig why.
	badKey string
	badSig error
	// applied is set by the Service's applier once it applied the leaf,
	// and outcome to why it refused it, or nil.
	applied bool
	outcome error
}

// NewChecked parses an event leaf (without verifying its signature).
func NewChecked(leaf []byte) (*Checked, error) {
	e, sig, err := parseLeaf(leaf)
	if err != nil {
		return nil, err
	}
	return &Checked{leaf: leaf, leafHash: merkle.LeafHash(leaf), event: e, sig: sig}, nil
}

// Event returns the parsed event.
func (c *Checked) Event() Event { return c.event }

// LeafHash returns the leaf's RFC 6962 leaf hash, computed once.
func (c *Checked) LeafHash() merkle.Hash { return c.leafHash }

// signerKey returns the key the rules require c's signature to verify
// under at s's position, or the error they refuse c with before that.
func (s *State) signerKey(c *Checked) (note.Verifier, string, error) {
	item, err := s.eventItem(c.event)
	if err != nil {
		return nil, "", err
	}
	_, v, vkey, err := s.signerRole(c.event, c.sig.keyHash, item)
	return v, vkey, err
}

// verify checks c's signature under v, whose key is vkey, unless it was
// checked under vkey before, and remembers the outcome. It reads no State,
// so a caller does this CPU work outside the lock guarding one.
func (c *Checked) verify(v note.Verifier, vkey string) error {
	switch vkey {
	case c.vkey:
		return nil
	case c.badKey:
		return c.badSig
	}
	if err := verifySig(c.leaf, c.event.Actor, &c.sig, v); err != nil {
		c.badKey, c.badSig = vkey, err
		return err
	}
	c.vkey = vkey
	return nil
}

// Precheck is Check for a parsed leaf at the next log position.
func (s *State) Precheck(c *Checked) error {
	var scratch ItemState
	_, _, err := s.check(s.next, c, &scratch)
	return err
}

// ApplyChecked is Apply for a parsed leaf: the rules are checked against
// the state at index, the position the log gave the leaf, and the
// signature is verified again only if they require another key than the
// one it verified under.
func (s *State) ApplyChecked(index uint64, c *Checked) (Applied, error) {
	a, ch, err := s.check(index, c, new(ItemState))
	if err != nil {
		return Applied{}, err
	}
	s.next = index + 1
	if ch.actor != nil {
		s.actors[ch.actor.ID] = ch.actor
	}
	if ch.item != nil {
		s.items[ch.item.ID.key()] = ch.item
	}
	if ch.claim != nil {
		s.claims[*ch.claim] = ch.item.ID
		a.Claim = ch.claim
	}
	return a, nil
}

// Apply validates the leaf at log position index against the custody rules
// and, if it is accepted, updates s. A refusal is a *RuleError wrapping one
// of the package's sentinel errors, and leaves s unchanged. Indices must
// increase from one applied event to the next (gaps are allowed: a bundle
// replays only some entries).
func (s *State) Apply(index uint64, leaf []byte) (Applied, error) {
	c, err := NewChecked(leaf)
	if err != nil {
		return Applied{}, &RuleError{Index: index, Err: err}
	}
	return s.ApplyChecked(index, c)
}

// change is what an accepted event replaces in the State.
type change struct {
	actor *ActorState
	item  *ItemState
	claim *[sha256.Size]byte
}

// check checks the parsed leaf c at index. It verifies c's signature
// unless c verified under the key the rules require here already.
//
// An item event's change is built in next: a new ItemState to apply, or a
// variable of a caller that only checks, which then need not allocate one.
func (s *State) check(index uint64, c *Checked, next *ItemState) (Applied, change, error) {
	e := c.event
	if index < s.next {
		return Applied{}, change{}, &RuleError{Index: index, Kind: e.Kind, Item: e.Item, Actor: e.Actor,
			Err: fmt.Errorf("%w: index %d, next is %d", ErrOutOfOrder, index, s.next)}
	}
	fail := func(err error) (Applied, change, error) {
		return Applied{}, change{}, &RuleError{Index: index, Kind: e.Kind, Item: e.Item, Actor: e.Actor, Err: err}
	}
	item, err := s.eventItem(e)
	if err != nil {
		return fail(err)
	}
	role, v, vkey, err := s.signerRole(e, c.sig.keyHash, item)
	if err != nil {
		return fail(err)
	}
	if err := c.verify(v, vkey); err != nil {
		return fail(err)
	}
	if err := s.checkSignerTime(e); err != nil {
		return fail(err)
	}
	ap := Applied{Index: index, LeafHash: c.leafHash, Event: e, Role: role}
	var ch change
	switch e.Kind {
	case KindEnroll:
		ch.actor, err = s.enroll(index, e.Time, e.Enroll)
	case KindRevoke:
		ch.actor, err = s.revoke(index, e.Revoke)
	case KindRegister:
		if s.items[e.Item.key()] != nil {
			return fail(fmt.Errorf("%w: %s", ErrAlreadyRegistered, e.Item))
		}
		r := e.Register
		ch.item = &ItemState{
			ID: e.Item, Product: r.Product, Lot: r.Lot, Description: r.Description,
			RegisteredBy: e.Actor, Registered: index, Custodian: e.Actor,
			Status: StatusInCustody, Parties: []string{e.Actor},
		}
	default:
		if e.Prev != item.Last {
			return fail(fmt.Errorf("%w: prev is %s, latest event of the item is %s (index %d)", ErrStalePrev, e.Prev, item.Last, item.LastIndex))
		}
		if e.Time.Before(item.LastTime) {
			return fail(&TimeError{Rule: ErrTimeBeforePrevious, Time: e.Time, Bound: item.LastTime, BoundIndex: item.LastIndex})
		}
		*next = *item
		ch.item = next
		switch e.Kind {
		case KindHandoff:
			err = s.handoff(index, e, next)
		case KindReceive:
			ch.claim, err = s.receive(index, e, role, next)
		case KindDispute:
			err = dispute(index, e, next)
		case KindRuling:
			if next.Status != StatusDisputed {
				err = fmt.Errorf("%w: item is %s", ErrNotDisputed, next.Status)
				break
			}
			next.Status, next.Dispute = next.Dispute.Was, nil
		}
	}
	if err != nil {
		return fail(err)
	}
	if ch.actor != nil {
		ch.actor.Latest = ap.LeafHash
	}
	if ch.item != nil {
		ch.item.Last, ch.item.LastIndex, ch.item.LastTime = ap.LeafHash, index, e.Time
		ch.item.Events++
	}
	return ap, ch, nil
}

// eventItem returns the registered item an item event other than a
// registration is about, nil for other events, or an error matching
// ErrNotFound.
func (s *State) eventItem(e Event) (*ItemState, error) {
	if !e.Kind.IsItemEvent() || e.Kind == KindRegister {
		return nil, nil
	}
	item := s.items[e.Item.key()]
	if item == nil {
		return nil, fmt.Errorf("%w: item %s is not registered", ErrNotFound, e.Item)
	}
	return item, nil
}

// signerRole returns the role of e's signer and the key that must have
// signed e at this position.
func (s *State) signerRole(e Event, keyHash uint32, item *ItemState) (Role, note.Verifier, string, error) {
	switch e.Kind {
	case KindEnroll, KindRevoke, KindRuling:
		if e.Actor != s.opID {
			return "", nil, "", fmt.Errorf("%w: %s events are signed by the operator %q", ErrWrongRole, e.Kind, s.opID)
		}
		return RoleOperator, s.op, s.opKey, nil
	}
	switch e.Actor {
	case s.opID:
		return "", nil, "", fmt.Errorf("%w: the operator does not make %s events", ErrWrongRole, e.Kind)
	case BuyerID:
		if e.Kind == KindReceive {
			v, _ := parseKey(e.Receive.BuyerKey, BuyerID) // checked by parseLeaf
			return RoleBuyer, v, e.Receive.BuyerKey, nil
		}
		// A dispute by the buyer who received the item, with the same key.
		if item.BuyerKey == "" {
			return "", nil, "", fmt.Errorf("%w: no buyer has received this item", ErrNotParty)
		}
		v, _ := parseKey(item.BuyerKey, BuyerID)
		return RoleBuyer, v, item.BuyerKey, nil
	}
	a := s.actors[e.Actor]
	if a == nil {
		return "", nil, "", fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, e.Actor)
	}
	cur := a.Keys[len(a.Keys)-1]
	for _, w := range a.Keys {
		if w.Revoked && keyHashOf(w.Key) == keyHash {
			return "", nil, "", fmt.Errorf("%w: key of %q was revoked at index %d", ErrRevoked, e.Actor, w.To)
		}
	}
	if a.Revoked {
		return "", nil, "", fmt.Errorf("%w: key of %q was revoked at index %d", ErrRevoked, e.Actor, cur.To)
	}
	allowed := true
	switch e.Kind {
	case KindRegister:
		allowed = a.Role == RoleManufacturer
	case KindHandoff:
		allowed = a.Role == RoleManufacturer || a.Role == RoleCourier || a.Role == RoleReseller
	}
	if !allowed {
		return "", nil, "", fmt.Errorf("%w: a %s may not make %s events", ErrWrongRole, a.Role, e.Kind)
	}
	v, _ := parseKey(cur.Key, a.ID) // checked at enrollment
	return a.Role, v, cur.Key, nil
}

func keyHashOf(vkey string) uint32 {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return 0
	}
	return v.KeyHash()
}

// checkSignerTime refuses an event of an enrolled actor whose time is
// before the enrollment of the actor's current key, the key signerRole
// requires. Operator and buyer keys are not enrolled: they have no such
// bound. It depends only on the log, so every replay decides alike.
func (s *State) checkSignerTime(e Event) error {
	if e.Actor == s.opID || e.Actor == BuyerID {
		return nil
	}
	a := s.actors[e.Actor]
	if a == nil {
		return nil // signerRole refused it already
	}
	cur := a.Keys[len(a.Keys)-1]
	if e.Time.Before(cur.Enrolled) {
		return &TimeError{Rule: ErrTimeBeforeEnrollment, Time: e.Time, Bound: cur.Enrolled, BoundIndex: cur.From}
	}
	return nil
}

func (s *State) enroll(index uint64, t time.Time, sub *Actor) (*ActorState, error) {
	if sub.ID == s.opID {
		return nil, fmt.Errorf("%w: %q is the operator", ErrAlreadyEnrolled, sub.ID)
	}
	old := s.actors[sub.ID]
	var keys []KeyWindow
	if old != nil {
		if !old.Revoked {
			return nil, fmt.Errorf("%w: %q is enrolled since index %d", ErrAlreadyEnrolled, sub.ID, old.Keys[len(old.Keys)-1].From)
		}
		for _, w := range old.Keys {
			if w.Key == sub.Key {
				return nil, fmt.Errorf("%w: %q held this key at [%d, %d); a re-enrollment needs a new key", ErrAlreadyEnrolled, sub.ID, w.From, w.To)
			}
		}
		keys = slices.Clone(old.Keys)
	}
	keys = append(keys, KeyWindow{Key: sub.Key, From: index, Enrolled: t})
	return &ActorState{Actor: *sub, Keys: keys}, nil
}

func (s *State) revoke(index uint64, r *Revoke) (*ActorState, error) {
	old := s.actors[r.ID]
	if old == nil {
		return nil, fmt.Errorf("%w: actor %q is not enrolled", ErrNotFound, r.ID)
	}
	if old.Revoked {
		return nil, fmt.Errorf("%w: %q was revoked at index %d already", ErrRevoked, r.ID, old.Keys[len(old.Keys)-1].To)
	}
	next := *old
	next.Revoked = true
	next.Keys = slices.Clone(old.Keys)
	last := &next.Keys[len(next.Keys)-1]
	last.To, last.Revoked = index, true
	return &next, nil
}

func (s *State) handoff(index uint64, e Event, it *ItemState) error {
	switch {
	case it.Status == StatusDisputed:
		return fmt.Errorf("%w: opened at index %d", ErrDisputed, it.Dispute.Index)
	case it.Status == StatusDelivered:
		return fmt.Errorf("%w: at index %d", ErrDelivered, it.DeliveredAt)
	case it.Custodian != e.Actor:
		return fmt.Errorf("%w: %s is held by %q", ErrNotCustodian, it.ID, it.Custodian)
	}
	h := e.Handoff
	p := &PendingHandoff{Index: index, To: h.To}
	if h.To != "" {
		to := s.actors[h.To]
		switch {
		case h.To == s.opID || h.To == BuyerID:
			return fmt.Errorf("%w: %q cannot hold custody; offer a buyer a claim code", ErrWrongRole, h.To)
		case to == nil:
			return fmt.Errorf("%w: receiver %q is not enrolled", ErrNotFound, h.To)
		case to.Revoked:
			return fmt.Errorf("%w: receiver %q was revoked at index %d", ErrRevoked, h.To, to.Keys[len(to.Keys)-1].To)
		}
	} else {
		claim, _ := base64.StdEncoding.DecodeString(h.Claim) // checked by parseLeaf
		p.Claim = [sha256.Size]byte(claim)
		p.Salt, _ = base64.StdEncoding.DecodeString(h.Salt)
		if other := s.claims[p.Claim]; other != (ItemID{}) {
			return fmt.Errorf("%w: this claim was used for %s", ErrClaimUsed, other)
		}
	}
	// A new handoff supersedes a pending one: the earlier offer lapses.
	it.Pending, it.Status = p, StatusInTransit
	return nil
}

func (s *State) receive(index uint64, e Event, role Role, it *ItemState) (*[sha256.Size]byte, error) {
	p := it.Pending
	switch {
	case it.Status == StatusDisputed:
		return nil, fmt.Errorf("%w: opened at index %d", ErrDisputed, it.Dispute.Index)
	case p == nil:
		return nil, fmt.Errorf("%w: %s is %s with %q", ErrNoHandoff, it.ID, it.Status, it.Custodian)
	}
	r := e.Receive
	var claim *[sha256.Size]byte
	if r.By != "" {
		if p.To == "" {
			return nil, fmt.Errorf("%w: the handoff at index %d is to a buyer by claim code", ErrWrongReceiver, p.Index)
		}
		if p.To != e.Actor {
			return nil, fmt.Errorf("%w: the handoff at index %d is to %q", ErrWrongReceiver, p.Index, p.To)
		}
	} else {
		if p.To != "" {
			return nil, fmt.Errorf("%w: the handoff at index %d is to %q, not by claim code", ErrWrongReceiver, p.Index, p.To)
		}
		sum := ClaimHash(p.Salt, r.ClaimCode)
		if s.claims[sum] != (ItemID{}) {
			return nil, fmt.Errorf("%w: for the handoff at index %d", ErrClaimUsed, p.Index)
		}
		if sum != p.Claim {
			return nil, fmt.Errorf("%w: for the handoff at index %d", ErrBadClaim, p.Index)
		}
		claim = &sum
		it.BuyerKey = r.BuyerKey
	}
	it.Custodian, it.Pending, it.Status = e.Actor, nil, StatusInCustody
	if role == RoleBuyer {
		it.Status, it.Delivered, it.DeliveredAt = StatusDelivered, e.Time, index
	}
	if _, found := slices.BinarySearch(it.Parties, e.Actor); !found {
		it.Parties = slices.Clone(it.Parties)
		i, _ := slices.BinarySearch(it.Parties, e.Actor)
		it.Parties = slices.Insert(it.Parties, i, e.Actor)
	}
	return claim, nil
}

func dispute(index uint64, e Event, it *ItemState) error {
	if it.Status == StatusDisputed {
		return fmt.Errorf("%w: opened at index %d", ErrDisputed, it.Dispute.Index)
	}
	if _, found := slices.BinarySearch(it.Parties, e.Actor); !found {
		return fmt.Errorf("%w: %q never held %s", ErrNotParty, e.Actor, it.ID)
	}
	it.Dispute = &OpenDispute{Index: index, By: e.Actor, Reason: e.Dispute.Reason, Was: it.Status}
	it.Status = StatusDisputed
	return nil
}
