package provenance

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Signed labels: GS1 AI 8030 (digital signature) on the Digital Link of an
// item carries its manufacturer's signature over the item id, so that the
// label itself can be checked offline, before and without the log.
//
// The signature is a C2SP signed note, by the manufacturer's Ed25519 key
// (named by its actor id), whose text is LabelText(id):
//
//	provtrail-label/v1
//	01/{gtin}/21/{serial}
//
// The note's signature line would carry base64(key hash || signature), 68
// bytes, 91 base64url characters: one too many for AI 8030, whose value is
// at most 90 characters of GS1 character set 64 (base64url). So the 8030
// value is the 64-byte Ed25519 signature alone, in unpadded base64url: 86
// characters. A verifier knows whose key to check it with (the item's
// registering manufacturer, from the log or a bundle), and rebuilds the
// note's signature line with that key's name and hash before note.Open
// checks it. See docs/verifying.md.

// LabelHeader is the first line of the text a label signature signs.
const LabelHeader = "provtrail-label/v1"

// LabelSigLen is the length of an AI 8030 label signature, in characters.
const LabelSigLen = 86

// LabelAI is the GS1 Application Identifier of the label signature, the
// query parameter of the Digital Link that carries it.
const LabelAI = "8030"

// ErrBadLabel is matched by every error of VerifyLabel and
// ParseLabelSignature.
var ErrBadLabel = errors.New("bad label signature")

// A LabelError says why a label signature is malformed or does not verify.
// It matches ErrBadLabel.
type LabelError struct {
	Reason string
}

func (e *LabelError) Error() string { return "bad label signature: " + e.Reason }

// Is reports whether target is ErrBadLabel.
func (e *LabelError) Is(target error) bool { return target == ErrBadLabel }

func badLabel(format string, args ...any) error {
	return &LabelError{Reason: fmt.Sprintf(format, args...)}
}

// LabelText returns the note text a label signature signs.
func LabelText(id ItemID) string {
	return LabelHeader + "\n" + id.String() + "\n"
}

// SignLabel signs the label of id with signer (the manufacturer's key) and
// returns the AI 8030 value: 86 characters of unpadded base64url.
func SignLabel(id ItemID, signer note.Signer) (string, error) {
	if id.IsZero() {
		return "", errors.New("sign label: no item")
	}
	msg, err := note.Sign(&note.Note{Text: LabelText(id)}, signer)
	if err != nil {
		return "", fmt.Errorf("sign label: %w", err)
	}
	// The note ends in one line "— name base64(hash||sig)\n".
	line := strings.TrimSuffix(string(msg[len(LabelText(id))+1:]), "\n")
	raw, err := base64.StdEncoding.DecodeString(line[strings.LastIndexByte(line, ' ')+1:])
	if err != nil || len(raw) != 4+64 {
		return "", errors.New("sign label: the key is not an Ed25519 key")
	}
	return base64.RawURLEncoding.EncodeToString(raw[4:]), nil
}

// ParseLabelSignature checks the form of an AI 8030 value and returns the
// Ed25519 signature it carries.
func ParseLabelSignature(sig string) ([]byte, error) {
	if len(sig) != LabelSigLen {
		return nil, badLabel("%d characters, want %d (base64url of a 64-byte Ed25519 signature)", len(sig), LabelSigLen)
	}
	for i := 0; i < len(sig); i++ {
		c := sig[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, badLabel("character %q at position %d is not base64url", c, i+1)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(raw) != 64 {
		return nil, badLabel("not the base64url of a 64-byte Ed25519 signature")
	}
	return raw, nil
}

// VerifyLabel checks that sig, an AI 8030 value, is the signature of the
// label of id by the key of verifier. Errors match ErrBadLabel.
func VerifyLabel(id ItemID, sig string, verifier note.Verifier) error {
	if id.IsZero() {
		return badLabel("no item")
	}
	raw, err := ParseLabelSignature(sig)
	if err != nil {
		return err
	}
	var full [4 + 64]byte
	binary.BigEndian.PutUint32(full[:4], verifier.KeyHash())
	copy(full[4:], raw)
	msg := LabelText(id) + "\n\u2014 " + verifier.Name() + " " + base64.StdEncoding.EncodeToString(full[:]) + "\n"
	if _, err := note.Open([]byte(msg), note.VerifierList(verifier)); err != nil {
		return badLabel("it is not %s's signature over %s", verifier.Name(), id)
	}
	return nil
}

// LabelLink returns the Digital Link of id under base with the label
// signature sig as ?8030= (no query when sig is empty).
func LabelLink(id ItemID, base, sig string) string {
	dl := id.DigitalLink(base)
	if sig == "" {
		return dl
	}
	return dl + "?" + LabelAI + "=" + sig
}

// ParseLabelLink parses a Digital Link (see ParseDigitalLink) and returns
// the item and its AI 8030 value, "" when the link has none. A malformed
// 8030 value is an error matching ErrBadLabel; its signature is not
// checked here.
func ParseLabelLink(s string) (ItemID, string, error) {
	id, err := ParseDigitalLink(s)
	if err != nil {
		return ItemID{}, "", err
	}
	u, err := url.Parse(s)
	if err != nil {
		return ItemID{}, "", badLabel("the link is not a URI")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return ItemID{}, "", badLabel("the link's query is malformed")
	}
	vs := q[LabelAI]
	switch len(vs) {
	case 0:
		return id, "", nil
	case 1:
	default:
		return ItemID{}, "", badLabel("the link has %d %s values, want one", len(vs), LabelAI)
	}
	if _, err := ParseLabelSignature(vs[0]); err != nil {
		return ItemID{}, "", err
	}
	return id, vs[0], nil
}

// LabelKey returns the verifier key the label of an item must be signed
// with: the key its manufacturer (a.ID == st.RegisteredBy) held when it
// registered the item, at log position st.Registered. It is "" when none
// of a's keys was valid there.
func LabelKey(st ItemState, a ActorState) string {
	if a.ID != st.RegisteredBy {
		return ""
	}
	key := ""
	for _, w := range a.Keys {
		if w.From > st.Registered {
			break
		}
		if w.Revoked && w.To <= st.Registered {
			continue
		}
		key = w.Key
	}
	if key == "" && len(a.Keys) == 0 && !a.Revoked {
		key = a.Key
	}
	return key
}
