package provenance_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
)

// TestErrorCodes checks every sentinel a request can be refused with has a
// code, and that the code stands for that sentinel again.
func TestErrorCodes(t *testing.T) {
	sentinels := []error{
		provenance.ErrMalformedEvent, provenance.ErrBadDigitalLink, provenance.ErrBadSignature, provenance.ErrNotFound,
		provenance.ErrNotCustodian, provenance.ErrWrongReceiver, provenance.ErrWrongRole, provenance.ErrRevoked,
		provenance.ErrKeyNotValid, provenance.ErrBadClaim, provenance.ErrNotParty, provenance.ErrStalePrev,
		provenance.ErrAlreadyRegistered, provenance.ErrAlreadyEnrolled, provenance.ErrClaimUsed, provenance.ErrDisputed,
		provenance.ErrNotDisputed, provenance.ErrDelivered, provenance.ErrNoHandoff, provenance.ErrNotAttempted,
		provenance.ErrTimeInFuture, provenance.ErrTimeBeforePrevious, provenance.ErrTimeBeforeEnrollment,
		merkle.ErrOutOfRange, merkle.ErrReadOnly,
	}
	seen := map[string]bool{}
	for _, s := range sentinels {
		code := provenance.ErrorCode(fmt.Errorf("some layer: %w", s))
		if code == "" {
			t.Errorf("%v has no code", s)
			continue
		}
		if seen[code] {
			t.Errorf("%v: code %q is another error's too", s, code)
		}
		seen[code] = true
		if back := provenance.CodeError(code); back != s {
			t.Errorf("CodeError(ErrorCode(%v)) = %v, want the same error", s, back)
		}
	}
	for _, code := range provenance.ErrorCodes() {
		if !seen[code] {
			t.Errorf("code %q stands for %v, which this test does not list", code, provenance.CodeError(code))
		}
	}

	// ErrRevoked matches ErrKeyNotValid too: it keeps its own code.
	if got := provenance.ErrorCode(provenance.ErrRevoked); got != "revoked" {
		t.Errorf("ErrorCode(ErrRevoked) = %q, want revoked", got)
	}
	// A leaf the log refuses is a malformed event.
	if got := provenance.ErrorCode(fmt.Errorf("append: %w", merkle.ErrInvalidLeaf)); got != "malformed_event" {
		t.Errorf("ErrorCode(merkle.ErrInvalidLeaf) = %q, want malformed_event", got)
	}
	for _, err := range []error{nil, errors.New("not found"), errors.New("disk on fire")} {
		if got := provenance.ErrorCode(err); got != "" {
			t.Errorf("ErrorCode(%v) = %q, want none", err, got)
		}
	}
	if err := provenance.CodeError("internal"); err != nil {
		t.Errorf("CodeError(internal) = %v, want nil", err)
	}
}
