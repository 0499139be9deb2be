package web

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// TestErrorStatus checks every refusal provenance gives a code is answered
// with a 4xx status and that code.
func TestErrorStatus(t *testing.T) {
	for _, code := range provenance.ErrorCodes() {
		err := fmt.Errorf("handler: %w", provenance.CodeError(code))
		status, got := classify(err)
		if got != code || status < 400 || status >= 500 {
			t.Errorf("classify(%v) = %d %s, want a 4xx and %s", err, status, got, code)
		}
	}
	if status, code := classify(provenance.ErrNotAttempted); status != http.StatusFailedDependency || code != "not_attempted" {
		t.Errorf("classify(ErrNotAttempted) = %d %s, want 424 not_attempted", status, code)
	}
}
