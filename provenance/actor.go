package provenance

import (
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// A Role is what an actor may do.
type Role string

// The roles. The operator is not enrolled: its key is pinned (see NewState).
// A buyer is usually not enrolled either: it receives with a claim code and
// a one-off key (see Receive).
const (
	RoleOperator     Role = "operator"
	RoleManufacturer Role = "manufacturer"
	RoleCourier      Role = "courier"
	RoleReseller     Role = "reseller"
	RoleBuyer        Role = "buyer"
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool {
	switch r {
	case RoleOperator, RoleManufacturer, RoleCourier, RoleReseller, RoleBuyer:
		return true
	}
	return false
}

// Reserved actor ids. No actor can be enrolled under them.
const (
	// OperatorID is the recommended name of the operator's key. Whatever
	// its name, the operator's key name is reserved too.
	OperatorID = "operator"
	// BuyerID is the actor id (and key name) of a buyer who receives an item
	// with a claim code and signs with a one-off key.
	BuyerID = "buyer"
)

// Limits on actor fields, in bytes.
const (
	MinActorIDLen = 3
	MaxActorIDLen = 64
	MaxNameLen    = 100
)

// An Actor is a party that signs events: the operator, or an enrolled
// manufacturer, courier, reseller or buyer.
type Actor struct {
	// ID is the actor's pseudonymous id: 3 to 64 characters of a-z, 0-9 and
	// '-', starting with a letter or digit. It is also the name of its key.
	ID   string `json:"id"`
	Role Role   `json:"role"`
	// Name is a display name, e.g. a company name; never a person's name.
	Name string `json:"name"`
	// Key is the actor's C2SP signed-note verifier key, name+hash+base64,
	// with name equal to ID; always Ed25519.
	Key string `json:"key"`
}

// CheckActorID returns an error matching ErrMalformedEvent unless id is a
// well-formed actor id. It does not check whether id is reserved.
func CheckActorID(id string) error {
	if reason := actorIDReason(id); reason != "" {
		return &EventError{Field: "actor id", Reason: reason}
	}
	return nil
}

func actorIDReason(id string) string {
	if len(id) < MinActorIDLen || len(id) > MaxActorIDLen {
		return fmt.Sprintf("actor id has %d characters, want %d to %d", len(id), MinActorIDLen, MaxActorIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0) {
			return fmt.Sprintf("actor id %q has %q at position %d; use a-z, 0-9 and '-' (not first)", id, c, i+1)
		}
	}
	return ""
}

// parseKey parses a verifier key that must be named name.
func parseKey(vkey, name string) (note.Verifier, string) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, "not an Ed25519 signed-note verifier key (name+hash+base64)"
	}
	if v.Name() != name {
		return nil, fmt.Sprintf("key is named %q, want %q", v.Name(), name)
	}
	return v, ""
}

// textReason reports why s is not acceptable text for a one-line free-text
// event field of at most max bytes, or "". It must be valid UTF-8 with no
// U+FFFD (the mark of a decoding error), and not start or end with spaces.
// It may hold none of the characters that would let text misrepresent
// itself on a page, where it is shown next to other actors' text:
//
//   - control characters, C0 and C1 (newlines and tabs included: every
//     field is one line) and the line and paragraph separators;
//   - bidi embeddings, overrides and isolates (U+202A to U+202E, U+2066
//     to U+2069), which reorder how the text around them displays;
//   - zero-width characters (U+200B to U+200D, U+2060, U+FEFF), which
//     make two different names look alike.
//
// The reason names the character as U+XXXX and its byte offset.
func textReason(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("has %d bytes, at most %d", len(s), max)
	}
	for i, r := range s {
		switch {
		case r == '\uFFFD':
			return fmt.Sprintf("invalid UTF-8 or U+FFFD at byte %d", i)
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0 || r == '\u2028' || r == '\u2029':
			return fmt.Sprintf("control character %U at byte %d", r, i)
		case '\u202A' <= r && r <= '\u202E' || '\u2066' <= r && r <= '\u2069':
			return fmt.Sprintf("bidi control character %U at byte %d (it reorders how text displays)", r, i)
		case '\u200B' <= r && r <= '\u200D' || r == '\u2060' || r == '\uFEFF':
			return fmt.Sprintf("zero-width character %U at byte %d (invisible)", r, i)
		}
	}
	if strings.TrimSpace(s) != s {
		return "starts or ends with white space"
	}
	return ""
}
