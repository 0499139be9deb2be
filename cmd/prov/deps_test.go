package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestSmallDeps checks that prov, the offline verifier, links none of the
// server's dependencies: not the Trillian client or gRPC (provd wires the
// Trillian backend), not gin, templ or the web package that uses them.
// The MySQL driver is linked, for rebuilding a shared index.
func TestSmallDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list; skipped with -short")
	}
	out, err := exec.CommandContext(t.Context(), "go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{"grpc", "trillian", "gin-gonic", "a-h/templ", "fasthttp"}
	// web/api, the API's contract, is free of gin and may be linked.
	ours := []string{"github.com/provtrail/provtrail/web", "github.com/provtrail/provtrail/templates"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.Contains(pkg, f) {
				t.Errorf("prov depends on %s", pkg)
			}
		}
		if slices.Contains(ours, pkg) {
			t.Errorf("prov depends on %s", pkg)
		}
	}
}
