package provenance

import (
	"os"
	"strings"
	"testing"
)

// TestBundleVector checks the worked example of docs/bundle.md
// (testdata/good_bundle.json, pinned keys in good_bundle.trust: origin,
// log key, operator key, one a line).
func TestBundleVector(t *testing.T) {
	b, err := os.ReadFile("testdata/good_bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := os.ReadFile("testdata/good_bundle.trust")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(tr)), "\n")
	if len(lines) != 3 {
		t.Fatalf("trust file has %d lines", len(lines))
	}
	trust := Trust{Origin: lines[0], LogKey: lines[1], OperatorKey: lines[2]}
	h, err := VerifyBundle(b, trust)
	if err != nil {
		t.Fatal(err)
	}
	if h.State.Status != StatusInCustody || h.State.Custodian != "swift" || len(h.Events) != 3 {
		t.Fatalf("history: %+v", h.State)
	}
}
