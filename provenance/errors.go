package provenance

import (
	"errors"
	"fmt"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// Errors of the custody rules and of the event and bundle parsers. Callers
// test for them with errors.Is; a web layer maps them to status codes.
var (
	// ErrMalformedEvent: the leaf is not a well-formed event note
	// (matched by every *EventError).
	ErrMalformedEvent = errors.New("malformed event")
	// ErrBadSignature: the signature does not verify with the key it must
	// be made with.
	ErrBadSignature = errors.New("bad signature")
	// ErrNotFound: an unknown item or actor.
	ErrNotFound = errors.New("not found")
	// ErrWrongRole: the signer's role may not make this event, or a handoff
	// names an actor that cannot hold custody.
	ErrWrongRole = errors.New("wrong role")
	// ErrRevoked: the actor's key was revoked before this log position
	// (ErrKeyNotValid matches it too).
	ErrRevoked = fmt.Errorf("key revoked: %w", ErrKeyNotValid)
	// ErrKeyNotValid: the signing key is not valid at this log position.
	ErrKeyNotValid = errors.New("key not valid at this log position")
	// ErrAlreadyEnrolled: an enroll for an actor that is enrolled and not
	// revoked, or with a key the actor held before.
	ErrAlreadyEnrolled = errors.New("already enrolled")
	// ErrAlreadyRegistered: the item is registered already.
	ErrAlreadyRegistered = errors.New("item already registered")
	// ErrNotCustodian: a handoff by an actor that does not hold the item.
	ErrNotCustodian = errors.New("not the custodian")
	// ErrWrongReceiver: a receive by an actor the pending handoff does not
	// name, or by name when it was offered by claim code (and vice versa).
	ErrWrongReceiver = errors.New("wrong receiver")
	// ErrNoHandoff: a receive with no handoff pending.
	ErrNoHandoff = errors.New("no handoff pending")
	// ErrStalePrev: prev is not the leaf hash of the item's latest event (a
	// replayed, reordered or racing event).
	ErrStalePrev = errors.New("prev is not the item's latest event")
	// ErrBadClaim: the claim code does not match the pending handoff.
	ErrBadClaim = errors.New("wrong claim code")
	// ErrClaimUsed: a claim (salted hash of a code) that was used already.
	ErrClaimUsed = errors.New("claim code already used")
	// ErrNotParty: a dispute by an actor that never held the item.
	ErrNotParty = errors.New("not a party to the item")
	// ErrDisputed: the item is under dispute; only a ruling may follow.
	ErrDisputed = errors.New("item is under dispute")
	// ErrNotDisputed: a ruling on an item with no open dispute.
	ErrNotDisputed = errors.New("item has no open dispute")
	// ErrDelivered: a handoff of an item already delivered to its buyer.
	ErrDelivered = errors.New("item already delivered")
	// ErrTimeInFuture: the event's time is more than MaxClockSkew after the
	// time it was submitted at. Only Submit refuses for it: it depends on
	// the clock, and a replay later must accept what was accepted then.
	ErrTimeInFuture = errors.New("event time in the future")
	// ErrTimeBeforePrevious: the time of an item event is before that of
	// the item's previous event.
	ErrTimeBeforePrevious = errors.New("event time before the item's previous event")
	// ErrTimeBeforeEnrollment: the event's time is before the time of the
	// enrollment of the key that signed it.
	ErrTimeBeforeEnrollment = errors.New("event time before the signer's enrollment")
	// ErrOutOfOrder: an event at a log index not after the last one applied.
	ErrOutOfOrder = errors.New("log index out of order")
	// ErrBadBundle is matched by every *BundleError.
	ErrBadBundle = errors.New("bad proof bundle")
	// ErrMalformedBundle: the bundle is not the canonical JSON of its
	// format (docs/bundle.md). A *BundleError that unwraps to it matches
	// ErrBadBundle too.
	ErrMalformedBundle = errors.New("malformed proof bundle")
)

// errorCodes names the refusals a request to the JSON API can meet (the
// errors above, and the log's that reach a request through the Service)
// with stable codes: provd answers a refusal with its code, and a client
// of the API maps the code back to the error. This is the only place the
// codes are spelled, so the server and its clients cannot disagree.
// Entries are tested in order with errors.Is: ErrRevoked comes before
// ErrKeyNotValid, which it matches too, and merkle.ErrInvalidLeaf after
// ErrMalformedEvent, the error its code stands for. It is never modified.
var errorCodes = [...]struct {
	err  error
	code string
}{
	{ErrMalformedEvent, "malformed_event"},
	{merkle.ErrInvalidLeaf, "malformed_event"}, // a leaf the log refuses: empty or too large
	{ErrBadDigitalLink, "bad_digital_link"},
	{ErrBadSignature, "bad_signature"},
	{merkle.ErrOutOfRange, "out_of_range"}, // a log position or size beyond the log
	{ErrNotFound, "not_found"},
	{ErrNotCustodian, "not_custodian"},
	{ErrWrongReceiver, "wrong_receiver"},
	{ErrWrongRole, "wrong_role"},
	{ErrRevoked, "revoked"},
	{ErrKeyNotValid, "key_not_valid"},
	{ErrBadClaim, "bad_claim"},
	{ErrNotParty, "not_party"},
	{ErrStalePrev, "stale_prev"},
	{ErrAlreadyRegistered, "already_registered"},
	{ErrAlreadyEnrolled, "already_enrolled"},
	{ErrClaimUsed, "claim_used"},
	{ErrDisputed, "disputed"},
	{ErrNotDisputed, "not_disputed"},
	{ErrDelivered, "delivered"},
	{ErrNoHandoff, "no_handoff"},
	{ErrTimeInFuture, "time_in_future"},
	{ErrTimeBeforePrevious, "time_before_previous"},
	{ErrTimeBeforeEnrollment, "time_before_enrollment"},
	{ErrNotAttempted, "not_attempted"},
	{merkle.ErrReadOnly, "read_only_mirror"}, // a write sent to a mirror, which takes none
}

// ErrorCode returns the code of the first error of the table err matches,
// or "" if it matches none: an error that is not a refusal of the request.
func ErrorCode(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// CodeError returns the error code stands for, or nil if no error has
// that code.
func CodeError(code string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

// ErrorCodes returns every code ErrorCode may return, each once, in the
// order it tests them.
func ErrorCodes() []string {
	var codes []string
	for _, c := range errorCodes {
		if CodeError(c.code) == c.err {
			codes = append(codes, c.code)
		}
	}
	return codes
}

// A RuleError reports an event refused by the custody rules, or not
// parseable at all. It unwraps to the reason, one of the errors above.
type RuleError struct {
	Index uint64 // log position of the event
	Kind  Kind   // "" if the leaf did not parse
	Item  ItemID // zero for actor events
	Actor string // the signer, "" if the leaf did not parse
	// NotLogged: the event was refused before it was appended (Submit);
	// Index is only the position it would have had, and is not said.
	NotLogged bool
	Err       error
}

func (e *RuleError) Error() string {
	var what string
	switch {
	case e.Kind == "":
		what = "event"
	case e.Item.IsZero():
		what = fmt.Sprintf("%s by %s", e.Kind, e.Actor)
	default:
		what = fmt.Sprintf("%s of %s by %s", e.Kind, e.Item, e.Actor)
	}
	switch {
	case e.NotLogged:
		return fmt.Sprintf("%s refused: %v", what, e.Err)
	case e.Kind == "":
		return fmt.Sprintf("event %d refused: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("event %d (%s) refused: %v", e.Index, what, e.Err)
}

func (e *RuleError) Unwrap() error { return e.Err }

// A TimeError reports an event time the rules refuse: in the future, or
// before a time the log fixed earlier. It matches its Rule, one of
// ErrTimeInFuture, ErrTimeBeforePrevious and ErrTimeBeforeEnrollment.
type TimeError struct {
	Rule  error
	Time  time.Time // the event's time
	Bound time.Time // the time it may not precede, or for ErrTimeInFuture the submission time
	// BoundIndex is the log position of the event whose time Bound is
	// (the item's previous event, the signer's enrollment); unused for
	// ErrTimeInFuture.
	BoundIndex uint64
}

func (e *TimeError) Error() string {
	const layout = time.RFC3339
	switch e.Rule {
	case ErrTimeInFuture:
		return fmt.Sprintf("%v: %s is more than %v after the server's time %s (check the signer's clock)",
			e.Rule, e.Time.UTC().Format(layout), MaxClockSkew, e.Bound.UTC().Format(layout))
	case ErrTimeBeforePrevious:
		return fmt.Sprintf("%v: %s is before %s, the time of the item's previous event (log index %d)",
			e.Rule, e.Time.UTC().Format(layout), e.Bound.UTC().Format(layout), e.BoundIndex)
	}
	return fmt.Sprintf("%v: %s is before %s, the time of the enrollment of the signing key (log index %d)",
		e.Rule, e.Time.UTC().Format(layout), e.Bound.UTC().Format(layout), e.BoundIndex)
}

func (e *TimeError) Unwrap() error { return e.Rule }
