package main

import (
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// TestLabel signs an item's label and checks it offline, with a pinned
// manufacturer key and with the key from a verified bundle.
func TestLabel(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	_, acmeKey := w.keygen("acme-spare") // a key of another name
	copycat := w.enroll("copycat", "manufacturer", "Copycat Inc")
	item := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair", "--base", "https://id.example.com").ok(t).line()
	id, err := provenance.ParseDigitalLink(item)
	if err != nil {
		t.Fatal(err)
	}

	link := prov(t, "label-sign", "--key", acme, "--item", item).ok(t).line()
	if !strings.HasPrefix(link, item+"?8030=") || len(link) != len(item)+len("?8030=")+provenance.LabelSigLen {
		t.Fatalf("label-sign printed %q", link)
	}
	forged := prov(t, "label-sign", "--key", copycat, "--item", id.String()).ok(t).line()
	if !strings.HasPrefix(forged, defaultBase+"/01/") {
		t.Fatalf("label-sign of an item id printed %q", forged)
	}

	origin, logKey, opKey := w.trust()
	bundle := w.path("chair.json")
	w.prov("bundle", "--item", item, "--out", bundle, "--log-key", logKey, "--operator-key", opKey).ok(t)
	policy := w.path("keys.policy")
	writeFile(t, policy, []byte("log "+logKey+"\noperator "+opKey+"\nquorum none\n"))

	r := prov(t, "verify-label", "--link", link, "--bundle", bundle, "--policy", policy).ok(t)
	if !strings.Contains(r.stdout, "signed by Acme Ltd (acme)") {
		t.Errorf("verify-label with a bundle: %q", r.stdout)
	}
	prov(t, "verify-label", "--link", link, "--bundle", bundle, "--origin", origin, "--log-key", logKey, "--operator-key", opKey).ok(t)

	// A label copied onto another item, and one forged with another key.
	other := strings.Replace(link, id.Serial, "ZZZZ", 1)
	prov(t, "verify-label", "--link", other, "--bundle", bundle, "--policy", policy).fails(t, exitFail, "the bundle is of "+id.String())
	prov(t, "verify-label", "--link", strings.Replace(forged, defaultBase, "https://id.example.com", 1), "--bundle", bundle, "--policy", policy).
		fails(t, exitFail, "does NOT verify")
	prov(t, "verify-label", "--link", forged, "--actor-key", acmeKey).fails(t, exitFail, "may be a copy")

	// A pinned key of another actor.
	prov(t, "verify-label", "--link", link, "--actor-key", acmeKey).fails(t, exitFail, "not acme-spare's signature")

	// A pinned log key the bundle was not made for.
	prov(t, "verify-label", "--link", link, "--bundle", bundle, "--log-key", newVKey(t, origin), "--operator-key", opKey).
		fails(t, exitFail, "does NOT verify")

	// Malformed input.
	prov(t, "verify-label", "--link", item, "--actor-key", acmeKey).fails(t, exitFail, "no label signature")
	prov(t, "verify-label", "--link", item+"?8030=abc", "--actor-key", acmeKey).fails(t, exitFail, "3 characters, want 86")
	prov(t, "verify-label", "--link", link).fails(t, exitUsage, "give the manufacturer's key")
	prov(t, "verify-label", "--link", link, "--actor-key", acmeKey, "--bundle", bundle).fails(t, exitUsage, "not both")
	prov(t, "verify-label", "--link", link, "--bundle", bundle).fails(t, exitUsage, "needs pinned keys")
	prov(t, "verify-label", "--link", link, "--actor-key", "nonsense").fails(t, exitFail, "not a signed-note verifier key")
	prov(t, "label-sign", "--key", acme, "--item", "https://x.example/01/09506000134353/21/A").fails(t, exitFail, "check digit")
}

// TestVerifyLabelPinnedKey checks a label with the manufacturer's pinned
// verifier key alone.
func TestVerifyLabelPinnedKey(t *testing.T) {
	dir := t.TempDir()
	key := dir + "/acme.key"
	vkey := prov(t, "keygen", "--id", "acme", "--out", key).ok(t).line()
	link := prov(t, "label-sign", "--key", key, "--item", "https://id.example.com/01/09506000134352/21/S1").ok(t).line()
	r := prov(t, "verify-label", "--link", link, "--actor-key", vkey).ok(t)
	if want := "label of 01/09506000134352/21/S1: signed by acme (the pinned --actor-key); checked offline\n"; r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	tampered := []byte(link)
	i := len(tampered) - 5
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	prov(t, "verify-label", "--link", string(tampered), "--actor-key", vkey).fails(t, exitFail, "does NOT verify")
}
