package provenance

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// EventHeader is the first line of the text of every event note: the name
// and version of the event format.
const EventHeader = "provtrail-event/v1"

// A Kind is the kind of an event.
type Kind string

// The kinds of events.
const (
	KindEnroll   Kind = "enroll"   // the operator enrolls an actor and its key
	KindRevoke   Kind = "revoke"   // the operator revokes an actor's key
	KindRegister Kind = "register" // a manufacturer registers an item
	KindHandoff  Kind = "handoff"  // the custodian offers custody
	KindReceive  Kind = "receive"  // the named receiver, or a buyer with the claim code, takes custody
	KindDispute  Kind = "dispute"  // a party to the item flags it
	KindRuling   Kind = "ruling"   // the operator closes the dispute
)

// IsItemEvent reports whether events of kind k concern one item.
func (k Kind) IsItemEvent() bool {
	switch k {
	case KindRegister, KindHandoff, KindReceive, KindDispute, KindRuling:
		return true
	}
	return false
}

// Limits on event fields, in bytes (claim codes in characters).
const (
	MaxPlaceLen       = 64
	MaxProductLen     = 200
	MaxLotLen         = 20
	MaxTextLen        = 500 // reasons, descriptions, decisions
	MaxEvidence       = 16
	MinClaimCodeLen   = 8
	MaxClaimCodeLen   = 64
	MinSaltLen        = 16
	MaxSaltLen        = 64
	maxEventJSONBytes = 8 << 10
)

// An Event is one signed statement: the JSON line of an event note.
// Exactly the payload field named by Kind is set; Item and Prev are set as
// the kind requires (see the package documentation).
type Event struct {
	Kind  Kind
	Actor string // id of the signer; the name of the signing key
	// Time is when the actor says it happened (UTC, whole seconds). It may
	// not be before the item's previous event nor the signing key's
	// enrollment, nor, when submitted, more than MaxClockSkew ahead.
	Time  time.Time
	Place string // coarse place (a city), optional
	Item  ItemID // item events only
	Prev  merkle.Hash

	Enroll   *Actor    // KindEnroll: the actor enrolled
	Revoke   *Revoke   // KindRevoke
	Register *Register // KindRegister
	Handoff  *Handoff  // KindHandoff
	Receive  *Receive  // KindReceive
	Dispute  *Dispute  // KindDispute
	Ruling   *Ruling   // KindRuling
}

// Revoke is the payload of a revoke event: the key of actor ID stops being
// valid from the position of this event on.
type Revoke struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Register is the payload of a register event.
type Register struct {
	Product     string `json:"product"`               // product name
	Lot         string `json:"lot,omitempty"`         // batch or lot (GS1 AI 10)
	Description string `json:"description,omitempty"` // optional GTIN description
}

// Handoff is the payload of a handoff event: custody is offered either to
// an enrolled actor (To) or to whoever presents the claim code whose salted
// hash is Claim.
type Handoff struct {
	To    string `json:"to,omitempty"`
	Claim string `json:"claim,omitempty"` // base64 of SHA-256(salt || code)
	Salt  string `json:"salt,omitempty"`  // base64 of 16 to 64 random bytes
}

// Receive is the payload of a receive event: either By, the actor named by
// the handoff (equal to the event's actor), or a buyer's ClaimCode and the
// one-off BuyerKey (named BuyerID) that signs this event.
type Receive struct {
	By        string `json:"by,omitempty"`
	ClaimCode string `json:"claim_code,omitempty"`
	BuyerKey  string `json:"buyer_key,omitempty"`
}

// Dispute is the payload of a dispute event.
type Dispute struct {
	Reason   string   `json:"reason"`
	Evidence []string `json:"evidence,omitempty"` // lowercase hex SHA-256 of evidence kept off the log
}

// Ruling is the payload of a ruling event; it closes the item's dispute.
type Ruling struct {
	Decision string `json:"decision"`
}

// wireEvent is the JSON form of an Event.
type wireEvent struct {
	Kind     Kind      `json:"kind"`
	Actor    string    `json:"actor"`
	Time     string    `json:"time"`
	Place    string    `json:"place,omitempty"`
	Item     string    `json:"item,omitempty"`
	Prev     string    `json:"prev,omitempty"`
	Enroll   *Actor    `json:"enroll,omitempty"`
	Revoke   *Revoke   `json:"revoke,omitempty"`
	Register *Register `json:"register,omitempty"`
	Handoff  *Handoff  `json:"handoff,omitempty"`
	Receive  *Receive  `json:"receive,omitempty"`
	Dispute  *Dispute  `json:"dispute,omitempty"`
	Ruling   *Ruling   `json:"ruling,omitempty"`
}

// An EventError says why an event is malformed. It matches
// ErrMalformedEvent.
type EventError struct {
	Field  string // e.g. "handoff.to", "time", "note"
	Reason string
}

func (e *EventError) Error() string {
	return fmt.Sprintf("malformed event: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrMalformedEvent.
func (e *EventError) Is(target error) bool { return target == ErrMalformedEvent }

func malformed(field, format string, args ...any) error {
	return &EventError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ClaimHash returns SHA-256(salt || code), the value a handoff to a buyer
// logs in place of the claim code.
func ClaimHash(salt []byte, code string) [sha256.Size]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(code))
	return [sha256.Size]byte(h.Sum(nil))
}

// NewClaim returns a fresh one-time claim code for a buyer (20 characters
// of Crockford base32 carrying 96 bits from rand) and the handoff payload that
// offers custody to whoever presents it. Give the code to the buyer only;
// it is never logged before the buyer's receive.
func NewClaim(rand io.Reader) (code string, h Handoff, err error) {
	var b [12 + MinSaltLen]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", Handoff{}, fmt.Errorf("new claim: %w", err)
	}
	code = newCrockford().EncodeToString(b[:12])[:20]
	salt := b[12:]
	sum := ClaimHash(salt, code)
	return code, Handoff{
		Claim: base64.StdEncoding.EncodeToString(sum[:]),
		Salt:  base64.StdEncoding.EncodeToString(salt),
	}, nil
}

// Sign checks e, writes it as an event note (EventHeader, the JSON line)
// and signs it with signer, whose name must be e.Actor. The result is the
// log leaf. Time is written in UTC to the second.
func Sign(e Event, signer note.Signer) ([]byte, error) {
	if signer.Name() != e.Actor {
		return nil, fmt.Errorf("sign event: %w", malformed("actor", "signer key is named %q, event actor is %q", signer.Name(), e.Actor))
	}
	w, err := e.wire()
	if err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	var buf bytes.Buffer
	buf.WriteString(EventHeader + "\n")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil { // Encode adds the final "\n"
		return nil, fmt.Errorf("sign event: %w", err)
	}
	// Check what was written as a parser will see it.
	if _, err := decodeEventText(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	leaf, err := note.Sign(&note.Note{Text: buf.String()}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	return leaf, nil
}

func (e Event) wire() (wireEvent, error) {
	w := wireEvent{
		Kind: e.Kind, Actor: e.Actor, Place: e.Place,
		Item: e.Item.String(), Enroll: e.Enroll, Revoke: e.Revoke, Register: e.Register,
		Handoff: e.Handoff, Receive: e.Receive, Dispute: e.Dispute, Ruling: e.Ruling,
	}
	if !e.Time.IsZero() {
		w.Time = e.Time.UTC().Format(time.RFC3339)
	}
	if e.Prev != (merkle.Hash{}) {
		w.Prev = e.Prev.String()
	}
	if _, err := w.event(); err != nil {
		return wireEvent{}, err
	}
	return w, nil
}

// ParseEvent parses an event leaf WITHOUT verifying its signature, e.g. to
// learn who signed it. It checks the note has exactly one signature, named
// as the event's actor, and that the event is well formed. Errors match
// ErrMalformedEvent.
func ParseEvent(leaf []byte) (Event, error) {
	e, _, err := parseLeaf(leaf)
	return e, err
}

// VerifyEvent checks the signature of an event leaf against verifier, then
// parses it. A signature by another key, or one that does not verify,
// matches ErrBadSignature.
func VerifyEvent(leaf []byte, verifier note.Verifier) (Event, error) {
	e, sig, err := parseLeaf(leaf)
	if err != nil {
		return Event{}, err
	}
	if err := verifySig(leaf, e.Actor, &sig, verifier); err != nil {
		return Event{}, err
	}
	return e, nil
}

// verifySig checks the signature parseLeaf found in leaf against v, which
// must be the key named actor with the signature's key hash. It is the
// check note.Open makes once it has matched a signature line to a known
// key; parseLeaf has parsed the note with note.Open already.
func verifySig(leaf []byte, actor string, sig *leafSig, v note.Verifier) error {
	if v.Name() != actor || v.KeyHash() != sig.keyHash {
		return fmt.Errorf("%w: signed by key %s/%08x, want %s/%08x", ErrBadSignature, actor, sig.keyHash, v.Name(), v.KeyHash())
	}
	if !v.Verify(leaf[:sig.text], sig.sig[:]) {
		return fmt.Errorf("%w: invalid signature for key %s+%08x", ErrBadSignature, actor, sig.keyHash)
	}
	return nil
}

// A leafSig is the one signature of an event note, as parseLeaf found it.
type leafSig struct {
	keyHash uint32
	text    int      // the signed text is the leaf's first text bytes
	sig     [64]byte // the Ed25519 signature
}

// parseLeaf parses an event note and returns the event and its one
// signature, unverified.
//
// note.Open, knowing no key, parses the note: the leaf is then a signed
// note as every verifier of the log reads it. On top of what note.Open
// accepts, an event leaf must be exactly its text and one signature line,
// and that line's base64 must be canonical (the unused bits of its last
// digit zero), so that one signed event has exactly one leaf and one leaf
// hash.
func parseLeaf(leaf []byte) (Event, leafSig, error) {
	if err := merkle.CheckLeaf(leaf); err != nil {
		return Event{}, leafSig{}, malformed("note", "%v", err)
	}
	_, err := note.Open(leaf, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return Event{}, leafSig{}, malformed("note", "not a signed note")
	}
	n := unverified.Note
	if len(n.UnverifiedSigs) != 1 {
		return Event{}, leafSig{}, malformed("note", "has %d signatures, want 1", len(n.UnverifiedSigs))
	}
	sig := n.UnverifiedSigs[0]
	// note.Open drops a repeated signature line: the leaf must hold the
	// line once, and nothing after it.
	if string(leaf[len(n.Text):]) != "\n\u2014 "+sig.Name+" "+sig.Base64+"\n" {
		return Event{}, leafSig{}, malformed("note", "signature block is not one signature line")
	}
	ls, err := decodeSig(sig)
	if err != nil {
		return Event{}, leafSig{}, err
	}
	ls.text = len(n.Text)
	e, err := decodeEventText(leaf[:ls.text])
	if err != nil {
		return Event{}, leafSig{}, err
	}
	if sig.Name != e.Actor {
		return Event{}, leafSig{}, malformed("actor", "event actor is %q but the note is signed by %q", e.Actor, sig.Name)
	}
	return e, ls, nil
}

// decodeSig decodes the base64 of a note signature that must be a key
// hash and an Ed25519 signature. note.Open decodes it leniently: any value
// of the unused bits of the last digit is accepted, so one signature has
// up to four spellings. Strict decoding refuses all but the canonical one.
func decodeSig(sig note.Signature) (leafSig, error) {
	raw, err := base64.StdEncoding.Strict().DecodeString(sig.Base64)
	if err != nil {
		return leafSig{}, malformed("note", "signature base64 is not canonical")
	}
	if len(raw) != 4+64 {
		return leafSig{}, malformed("note", "signature is not an Ed25519 signature")
	}
	ls := leafSig{keyHash: sig.Hash}
	copy(ls.sig[:], raw[4:])
	return ls, nil
}

// decodeEventText parses the text of an event note: the header line and
// one line of JSON exactly as Sign writes it. encoding/json decodes the
// line, refusing unknown fields, and re-encoding what it decoded must give
// the line back.
func decodeEventText(text []byte) (Event, error) {
	body, ok := bytes.CutPrefix(text, []byte(EventHeader+"\n"))
	if !ok {
		first, _, _ := bytes.Cut(text, []byte("\n"))
		return Event{}, malformed("header", "first line is %.40q, want %q", first, EventHeader)
	}
	line, ok := bytes.CutSuffix(body, []byte("\n"))
	if !ok || bytes.IndexByte(line, '\n') >= 0 {
		return Event{}, malformed("note", "text is not the header and one line of JSON")
	}
	if len(line) > maxEventJSONBytes {
		return Event{}, malformed("json", "%d bytes, at most %d", len(line), maxEventJSONBytes)
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, malformed("json", "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return Event{}, malformed("json", "trailing data")
	}
	// One event has one byte form: what Sign writes. Re-encoding and
	// comparing refuses duplicate or differently cased keys, keys out of
	// order, spaces and needless escapes alike.
	var canon bytes.Buffer
	enc := json.NewEncoder(&canon)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return Event{}, malformed("json", "%v", err)
	}
	if canon.Len() != len(line)+1 || !bytes.Equal(canon.Bytes()[:len(line)], line) {
		return Event{}, malformed("json", "not in canonical form (compact, fields once each in the documented order, lowercase keys, no needless escapes)")
	}
	return w.event()
}

// event checks w and converts it to an Event.
func (w wireEvent) event() (Event, error) {
	e := Event{
		Kind: w.Kind, Actor: w.Actor, Place: w.Place,
		Enroll: w.Enroll, Revoke: w.Revoke, Register: w.Register,
		Handoff: w.Handoff, Receive: w.Receive, Dispute: w.Dispute, Ruling: w.Ruling,
	}
	if reason := actorIDReason(w.Actor); reason != "" {
		return Event{}, malformed("actor", "%s", reason)
	}
	t, err := time.Parse(time.RFC3339, w.Time)
	var formatted [len(time.RFC3339)]byte
	if err != nil || !strings.HasSuffix(w.Time, "Z") || string(t.AppendFormat(formatted[:0], time.RFC3339)) != w.Time {
		return Event{}, malformed("time", "%.40q is not RFC 3339 UTC to the second (2006-01-02T15:04:05Z)", w.Time)
	}
	e.Time = t
	if reason := textReason(w.Place, MaxPlaceLen); reason != "" {
		return Event{}, malformed("place", "%s", reason)
	}
	// Exactly the payload of the kind (an array, not a map: this runs for
	// every event).
	payloads := [...]struct {
		kind    Kind
		present bool
	}{
		{KindEnroll, w.Enroll != nil}, {KindRevoke, w.Revoke != nil}, {KindRegister, w.Register != nil},
		{KindHandoff, w.Handoff != nil}, {KindReceive, w.Receive != nil}, {KindDispute, w.Dispute != nil},
		{KindRuling, w.Ruling != nil},
	}
	known := false
	for _, p := range payloads {
		known = known || p.kind == w.Kind
	}
	if !known {
		return Event{}, malformed("kind", "unknown kind %.40q", w.Kind)
	}
	for _, p := range payloads {
		if p.present != (p.kind == w.Kind) {
			if p.kind == w.Kind {
				return Event{}, malformed(string(p.kind), "missing for a %s event", w.Kind)
			}
			return Event{}, malformed(string(p.kind), "not allowed in a %s event", w.Kind)
		}
	}
	// Item and prev.
	if w.Kind.IsItemEvent() {
		id, err := ParseItemID(w.Item)
		if err != nil {
			var dl *DigitalLinkError
			errors.As(err, &dl)
			return Event{}, malformed("item", "%s", dl.Reason)
		}
		e.Item = id
	} else if w.Item != "" {
		return Event{}, malformed("item", "not allowed in a %s event", w.Kind)
	}
	switch {
	case w.Kind.IsItemEvent() && w.Kind != KindRegister:
		h, err := merkle.ParseHash(w.Prev)
		if err != nil {
			return Event{}, malformed("prev", "must be the base64 leaf hash of the item's previous event")
		}
		e.Prev = h
	case w.Prev != "":
		return Event{}, malformed("prev", "not allowed in a %s event", w.Kind)
	}
	if w.Actor == BuyerID && w.Kind != KindReceive && w.Kind != KindDispute {
		return Event{}, malformed("actor", "%q may only receive or dispute", BuyerID)
	}
	if err := checkPayload(w); err != nil {
		return Event{}, err
	}
	return e, nil
}

func checkPayload(w wireEvent) error {
	text := func(field, s string, min, max int) error {
		if len(s) < min {
			return malformed(field, "is empty")
		}
		if reason := textReason(s, max); reason != "" {
			return malformed(field, "%s", reason)
		}
		return nil
	}
	switch w.Kind {
	case KindEnroll:
		a := w.Enroll
		if reason := actorIDReason(a.ID); reason != "" {
			return malformed("enroll.id", "%s", reason)
		}
		if a.ID == OperatorID || a.ID == BuyerID {
			return malformed("enroll.id", "%q is reserved", a.ID)
		}
		if !a.Role.Valid() || a.Role == RoleOperator {
			return malformed("enroll.role", "%.40q is not manufacturer, courier, reseller or buyer", a.Role)
		}
		if err := text("enroll.name", a.Name, 1, MaxNameLen); err != nil {
			return err
		}
		if _, reason := parseKey(a.Key, a.ID); reason != "" {
			return malformed("enroll.key", "%s", reason)
		}
	case KindRevoke:
		if reason := actorIDReason(w.Revoke.ID); reason != "" {
			return malformed("revoke.id", "%s", reason)
		}
		return text("revoke.reason", w.Revoke.Reason, 1, MaxTextLen)
	case KindRegister:
		r := w.Register
		if err := text("register.product", r.Product, 1, MaxProductLen); err != nil {
			return err
		}
		if len(r.Lot) > MaxLotLen {
			return malformed("register.lot", "has %d characters, at most %d", len(r.Lot), MaxLotLen)
		}
		for i := 0; i < len(r.Lot); i++ {
			if !inSet82(r.Lot[i]) {
				return malformed("register.lot", "character %q not allowed (GS1 AI 10)", r.Lot[i])
			}
		}
		return text("register.description", r.Description, 0, MaxTextLen)
	case KindHandoff:
		h := w.Handoff
		switch {
		case h.To != "" && h.Claim == "" && h.Salt == "":
			if reason := actorIDReason(h.To); reason != "" {
				return malformed("handoff.to", "%s", reason)
			}
			if h.To == w.Actor {
				return malformed("handoff.to", "an actor cannot hand off to itself")
			}
		case h.To == "" && h.Claim != "" && h.Salt != "":
			if b, err := base64.StdEncoding.Strict().DecodeString(h.Claim); err != nil || len(b) != sha256.Size {
				return malformed("handoff.claim", "must be the base64 SHA-256 of salt and claim code")
			}
			if b, err := base64.StdEncoding.Strict().DecodeString(h.Salt); err != nil || len(b) < MinSaltLen || len(b) > MaxSaltLen {
				return malformed("handoff.salt", "must be base64 of %d to %d bytes", MinSaltLen, MaxSaltLen)
			}
		default:
			return malformed("handoff", "must have either to, or claim and salt")
		}
	case KindReceive:
		r := w.Receive
		switch {
		case r.By != "" && r.ClaimCode == "" && r.BuyerKey == "":
			if r.By != w.Actor {
				return malformed("receive.by", "is %.70q but the event is signed by %q", r.By, w.Actor)
			}
			if r.By == BuyerID {
				return malformed("receive.by", "a buyer receives with a claim code")
			}
		case r.By == "" && r.ClaimCode != "" && r.BuyerKey != "":
			if w.Actor != BuyerID {
				return malformed("actor", "a receive with a claim code is signed by %q, not %q", BuyerID, w.Actor)
			}
			if reason := claimCodeReason(r.ClaimCode); reason != "" {
				return malformed("receive.claim_code", "%s", reason)
			}
			if _, reason := parseKey(r.BuyerKey, BuyerID); reason != "" {
				return malformed("receive.buyer_key", "%s", reason)
			}
		default:
			return malformed("receive", "must have either by, or claim_code and buyer_key")
		}
	case KindDispute:
		d := w.Dispute
		if err := text("dispute.reason", d.Reason, 1, MaxTextLen); err != nil {
			return err
		}
		if len(d.Evidence) > MaxEvidence {
			return malformed("dispute.evidence", "has %d hashes, at most %d", len(d.Evidence), MaxEvidence)
		}
		for i, h := range d.Evidence {
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size || strings.ToLower(h) != h {
				return malformed("dispute.evidence", "entry %d is not a lowercase hex SHA-256", i+1)
			}
		}
	case KindRuling:
		return text("ruling.decision", w.Ruling.Decision, 1, MaxTextLen)
	}
	return nil
}

func claimCodeReason(c string) string {
	if len(c) < MinClaimCodeLen || len(c) > MaxClaimCodeLen {
		return fmt.Sprintf("has %d characters, want %d to %d", len(c), MinClaimCodeLen, MaxClaimCodeLen)
	}
	for i := 0; i < len(c); i++ {
		if c[i] <= ' ' || c[i] > '~' {
			return fmt.Sprintf("character %q at position %d is not printable ASCII", c[i], i+1)
		}
	}
	return ""
}
