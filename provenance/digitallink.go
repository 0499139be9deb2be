package provenance

import (
	"cmp"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxSerialLen is the longest serial number GS1 AI 21 allows, in characters.
const MaxSerialLen = 20

// ErrBadDigitalLink is matched by every *DigitalLinkError.
var ErrBadDigitalLink = errors.New("bad GS1 Digital Link")

// A DigitalLinkError says what is wrong with a GS1 Digital Link URI, a
// GTIN or a serial number. It matches ErrBadDigitalLink.
type DigitalLinkError struct {
	Input  string // the text that was parsed
	Reason string // what was wrong, e.g. "check digit is 3, expected 1"
}

func (e *DigitalLinkError) Error() string {
	return fmt.Sprintf("bad GS1 Digital Link %q: %s", e.Input, e.Reason)
}

// Is reports whether target is ErrBadDigitalLink.
func (e *DigitalLinkError) Is(target error) bool { return target == ErrBadDigitalLink }

// An ItemID names one physical item: a GTIN-14 and a serial number (GS1 AI
// 01 and 21). The zero ItemID names no item.
type ItemID struct {
	GTIN   string // 14 digits, check digit verified
	Serial string // 1 to 20 characters of GS1 AI character set 82, not encoded
}

// compareItemIDs orders item IDs by GTIN, then serial.
func compareItemIDs(a, b ItemID) int {
	return cmp.Or(cmp.Compare(a.GTIN, b.GTIN), cmp.Compare(a.Serial, b.Serial))
}

// An itemKey is an ItemID as a map key held in place: the GTIN's digits as
// a number and the serial's bytes, NUL-padded, so that a map lookup hashes
// and compares the key itself rather than two strings held elsewhere in
// memory.
// Keys are one per ID of the right shape (a GTIN of 14 digits, a serial of
// 1 to 20 bytes without NUL); every other ID gets badItemKey, which no
// stored item has, since stored items were parsed. (key checks the shape
// only: an ID with a wrong check digit has a key of its own, and finds
// nothing.)
type itemKey struct {
	gtin   uint64
	serial [MaxSerialLen]byte
}

// badItemKey is the key of every malformed ItemID: a GTIN has 14 digits,
// under 1<<63.
var badItemKey = itemKey{gtin: 1 << 63}

func (id ItemID) key() itemKey {
	if len(id.GTIN) != 14 || len(id.Serial) == 0 || len(id.Serial) > MaxSerialLen || strings.IndexByte(id.Serial, 0) >= 0 {
		return badItemKey
	}
	var k itemKey
	for i := range len(id.GTIN) {
		c := id.GTIN[i]
		if c < '0' || c > '9' {
			return badItemKey
		}
		k.gtin = k.gtin*10 + uint64(c-'0')
	}
	copy(k.serial[:], id.Serial)
	return k
}

// String returns the item in the form "01/{gtin}/21/{serial}", with the
// serial as is (not percent-encoded). Events name items in this form;
// ParseItemID reads it back.
func (id ItemID) String() string {
	if id.IsZero() {
		return ""
	}
	return "01/" + id.GTIN + "/21/" + id.Serial
}

// IsZero reports whether id is the zero ItemID.
func (id ItemID) IsZero() bool { return id == ItemID{} }

// DigitalLink returns the canonical GS1 Digital Link URI of the item under
// base (e.g. "https://id.example.com"; a trailing slash is dropped): the
// GTIN-14, and the serial with every character outside A-Z a-z 0-9 - . _
// percent-encoded, as GS1 Digital Link requires.
func (id ItemID) DigitalLink(base string) string {
	return strings.TrimRight(base, "/") + "/01/" + id.GTIN + "/21/" + encodeSerial(id.Serial)
}

// MarshalText returns id.String(), so that an ItemID is a JSON string.
func (id ItemID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the form written by MarshalText.
func (id *ItemID) UnmarshalText(b []byte) error {
	v, err := ParseItemID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// NewItemID checks a GTIN (8, 12, 13 or 14 digits, padded to 14) and a
// serial, and returns the item they name.
func NewItemID(gtin, serial string) (ItemID, error) {
	g, reason := checkGTIN(gtin)
	if reason != "" {
		return ItemID{}, &DigitalLinkError{Input: gtin, Reason: reason}
	}
	if reason := checkSerial(serial); reason != "" {
		return ItemID{}, &DigitalLinkError{Input: serial, Reason: reason}
	}
	return ItemID{GTIN: g, Serial: serial}, nil
}

// ParseItemID parses the form "01/{gtin}/21/{serial}" written by
// ItemID.String: a 14-digit GTIN and a serial that is not percent-encoded.
func ParseItemID(s string) (ItemID, error) {
	rest, ok := strings.CutPrefix(s, "01/")
	if !ok || len(rest) < 14+4 || rest[14:18] != "/21/" {
		return ItemID{}, &DigitalLinkError{Input: s, Reason: `not of the form "01/{14-digit GTIN}/21/{serial}"`}
	}
	gtin, serial := rest[:14], rest[18:]
	if _, reason := checkGTIN(gtin); reason != "" {
		return ItemID{}, &DigitalLinkError{Input: s, Reason: reason}
	}
	if reason := checkSerial(serial); reason != "" {
		return ItemID{}, &DigitalLinkError{Input: s, Reason: reason}
	}
	return ItemID{GTIN: gtin, Serial: serial}, nil
}

// ParseDigitalLink parses a GS1 Digital Link URI of an item,
// "http(s)://host[/prefix]/01/{gtin}/21/{serial}", or its bare path
// "/01/{gtin}/21/{serial}". A query string (such as ?8030=...) and a fragment
// are ignored. A GTIN-8, -12 or -13 is padded to 14 digits; the check digit is
// verified. The serial is percent-decoded exactly once and must then be 1 to
// 20 characters of GS1 AI character set 82; a '/' in the serial must be
// written %2F.
func ParseDigitalLink(s string) (ItemID, error) {
	bad := func(format string, args ...any) (ItemID, error) {
		return ItemID{}, &DigitalLinkError{Input: s, Reason: fmt.Sprintf(format, args...)}
	}
	if !utf8.ValidString(s) {
		return bad("not valid UTF-8")
	}
	u, err := url.Parse(s)
	if err != nil {
		var esc url.EscapeError
		if errors.As(err, &esc) {
			return bad("bad percent-encoding %q", string(esc))
		}
		return bad("not a URI")
	}
	switch {
	case u.Scheme == "" && u.Host == "" && u.Opaque == "":
		if !strings.HasPrefix(s, "/") {
			return bad("a bare path must start with /01/")
		}
	case strings.EqualFold(u.Scheme, "http") || strings.EqualFold(u.Scheme, "https"):
		if u.Host == "" {
			return bad("no host")
		}
		if u.User != nil {
			return bad("user information is not allowed")
		}
	default:
		return bad("scheme must be http or https")
	}
	segs := strings.Split(u.EscapedPath(), "/")
	// segs[0] is empty (the path starts with '/'); the item is the last four.
	n := len(segs)
	if n < 5 || segs[n-4] != "01" || segs[n-2] != "21" {
		return bad(`path does not end in "/01/{gtin}/21/{serial}"`)
	}
	gtin, reason := checkGTIN(segs[n-3])
	if reason != "" {
		return bad("%s", reason)
	}
	serial, err := url.PathUnescape(segs[n-1])
	if err != nil {
		return bad("serial is not correctly percent-encoded")
	}
	if reason := checkSerial(serial); reason != "" {
		return bad("%s", reason)
	}
	return ItemID{GTIN: gtin, Serial: serial}, nil
}

// checkGTIN returns the GTIN-14 form of g, or why g is not a GTIN.
func checkGTIN(g string) (string, string) {
	switch len(g) {
	case 8, 12, 13, 14:
	default:
		return "", fmt.Sprintf("GTIN has %d digits, want 8, 12, 13 or 14", len(g))
	}
	for i := 0; i < len(g); i++ {
		if g[i] < '0' || g[i] > '9' {
			return "", fmt.Sprintf("GTIN has %q at position %d, want only digits", g[i], i+1)
		}
	}
	g = strings.Repeat("0", 14-len(g)) + g
	if want := CheckDigit(g[:13]); g[13] != want {
		return "", fmt.Sprintf("check digit is %c, expected %c", g[13], want)
	}
	return g, ""
}

// CheckDigit returns the GS1 mod-10 check digit of digits, a string of
// decimal digits without its check digit (e.g. the first 13 of a GTIN-14).
func CheckDigit(digits string) byte {
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 0 {
			d *= 3
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// inSet82 reports whether c is in GS1 AI encodable character set 82.
func inSet82(c byte) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(`!"%&'()*+,-./:;<=>?_`, c) >= 0
}

// checkSerial returns why s is not a GS1 AI 21 serial, or "".
func checkSerial(s string) string {
	if s == "" {
		return "serial is empty"
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if size != 1 || !inSet82(s[i]) {
			if r == utf8.RuneError && size <= 1 {
				return fmt.Sprintf("byte 0x%02x not allowed in serial", s[i])
			}
			return fmt.Sprintf("character %q not allowed in serial", r)
		}
		i += size
	}
	if len(s) > MaxSerialLen {
		return fmt.Sprintf("serial has %d characters, at most %d", len(s), MaxSerialLen)
	}
	return ""
}

// encodeSerial percent-encodes every byte of s outside A-Z a-z 0-9 - . _
func encodeSerial(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// serialAlphabet is Crockford's base32 alphabet: digits and capitals without
// I, L, O and U, all in set 82 and none needing percent-encoding.
const serialAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewSerial returns an unguessable serial number: 16 characters of
// Crockford base32 carrying 80 bits read from rand (crypto/rand.Reader in
// production).
func NewSerial(rand io.Reader) (string, error) {
	var b [10]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("new serial: %w", err)
	}
	return newCrockford().EncodeToString(b[:]), nil
}

func newCrockford() *base32.Encoding {
	return base32.NewEncoding(serialAlphabet).WithPadding(base32.NoPadding)
}
