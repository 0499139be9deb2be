package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// TestPostEventNonCanonicalSignature posts a signed event whose signature
// base64 is not canonical (the last digit differs in the bits base64 leaves
// unused): 400, malformed_event, with a message that names the problem;
// nothing is logged.
func TestPostEventNonCanonicalSignature(t *testing.T) {
	e := newEnv(t, true)
	e.enroll("acme", provenance.RoleManufacturer, "Acme")
	leaf := e.registerLeaf("acme", mustItem(t, "09506000134352", "NC1"), "Bag", "Shenzhen")
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	bad := bytes.Clone(leaf)
	i := len(bytes.TrimRight(bytes.TrimSuffix(bad, []byte("\n")), "=")) - 1
	bad[i] = digits[strings.IndexByte(digits, bad[i])^1]

	before := e.checkpointSize()
	status, body := e.post(bad)
	var ae apiErr
	if err := json.Unmarshal(body, &ae); err != nil {
		t.Fatalf("%d %s: %v", status, body, err)
	}
	if status != http.StatusBadRequest || ae.Error.Code != "malformed_event" || !strings.Contains(ae.Error.Message, "signature base64 is not canonical") {
		t.Fatalf("POST = %d %s, want 400 malformed_event saying the signature base64 is not canonical", status, body)
	}
	if after := e.checkpointSize(); after != before {
		t.Fatalf("log grew from %d to %d", before, after)
	}
	e.ok(leaf)
}
