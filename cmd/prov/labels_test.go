package main

import (
	"os"
	"strings"
	"testing"
)

// TestLabels saves the label sheet of items registered in a batch, read
// from register's output as a pipe would give it.
func TestLabels(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme")
	links := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair", "--count", "3").ok(t).stdout
	url := w.serve()

	e := newEnv(strings.NewReader(links), &strings.Builder{}, &strings.Builder{})
	out := w.path("labels.html")
	if code := e.run(t.Context(), []string{"labels", "--server", url, "--out", out}); code != exitOK {
		t.Fatalf("labels exited %d: %s", code, e.stderr)
	}
	sheet := string(readFile(t, out))
	if n := strings.Count(sheet, `data-testid="label"`); n != 3 {
		t.Fatalf("the sheet has %d labels, want 3", n)
	}
	for _, l := range strings.Fields(links) {
		if !strings.Contains(sheet, l[strings.Index(l, "/01/"):]) {
			t.Errorf("the sheet lacks %s", l)
		}
	}
	// Without --out it prints the sheet's URL.
	r := prov(t, "labels", "--server", url, "--item", strings.Fields(links)[0]).ok(t)
	if !strings.HasPrefix(r.stdout, url+"/labels?item=") {
		t.Errorf("labels printed %q", r.stdout)
	}
	prov(t, "labels", "--server", url, "--item", "/01/09506000134353/21/X").fails(t, exitFail, "check digit")
	prov(t, "labels", "--server", url).fails(t, exitUsage, "no items")
	prov(t, "labels", "--item", "x").fails(t, exitUsage, "--server")
	if _, err := os.Stat(w.path("nothing.html")); err == nil {
		t.Fatal("a failed run wrote a file")
	}
}
