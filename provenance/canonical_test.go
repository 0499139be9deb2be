package provenance_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// nonCanonical returns the signed note leaf with the last base64 digit of
// its signature changed in the two bits base64 leaves unused: the same
// signature, which note.Open decodes and verifies, spelled another way.
func nonCanonical(leaf []byte) []byte {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out := bytes.Clone(leaf)
	i := len(bytes.TrimRight(bytes.TrimSuffix(out, []byte("\n")), "=")) - 1
	out[i] = digits[strings.IndexByte(digits, out[i])^1]
	return out
}

// TestSubmitNonCanonicalSignature submits a signed event whose signature
// base64 is not canonical: it is refused as malformed and not logged, and
// the same event in its one byte form is then accepted.
func TestSubmitNonCanonicalSignature(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	leaf := w.register("acme", w.newItem())
	before := w.size()
	_, err := w.svc.Submit(t.Context(), nonCanonical(leaf))
	var ee *provenance.EventError
	if !errors.Is(err, provenance.ErrMalformedEvent) || !errors.As(err, &ee) {
		t.Fatalf("Submit = %v, want an *EventError matching ErrMalformedEvent", err)
	}
	t.Log(err)
	if after := w.size(); after != before {
		t.Fatalf("log grew from %d to %d", before, after)
	}
	w.ok(leaf)
}
