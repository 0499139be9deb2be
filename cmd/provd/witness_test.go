package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/witness"
	"github.com/provtrail/provtrail/provenance"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestWitnessPolicy runs provd with a witness: its checkpoints, receipts
// and bundles carry the witness's cosignature, so a verifier whose policy
// requires that witness accepts them; a bundle from a provd without the
// witness fails that policy.
func TestWitnessPolicy(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	// Make the data directory first, to learn the log key the witness
	// must know.
	n, err := datadir.Open(t.Context(), datadir.Config{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	logKey := n.Trust.LogKey
	n.Close()

	wskey, wvkey, err := note.GenerateKey(nil, "witness.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := fnote.NewSignerForCosignatureV1(wskey)
	if err != nil {
		t.Fatal(err)
	}
	wcv, _ := fnote.VKeyToCosignatureV1(wvkey)
	lv, _ := note.NewVerifier(logKey)
	w, err := witness.New(witness.Config{Signer: ws, Logs: []note.Verifier{lv}, StatePath: filepath.Join(t.TempDir(), "w.state")})
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(w)
	defer wsrv.Close()
	policyFile := filepath.Join(t.TempDir(), "witnesses.policy")
	if err := os.WriteFile(policyFile, fmt.Appendf(nil, "witness w1 %s %s\nquorum w1\n", wcv, wsrv.URL), 0o644); err != nil {
		t.Fatal(err)
	}

	s := startProvd(t, data, "--witness-policy", policyFile)
	verifierPolicy, err := merkle.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w1 %s\nquorum w1\n", logKey, wcv))
	if err != nil {
		t.Fatal(err)
	}
	code, cp := s.get("/checkpoint")
	if code != http.StatusOK {
		t.Fatalf("/checkpoint: %d", code)
	}
	if _, err := verifierPolicy.Verify(cp); err != nil {
		t.Fatalf("/checkpoint lacks the witness's cosignature: %v\n%s", err, cp)
	}

	k := newKeys(t, data)
	s.submit(k.enroll("acme", provenance.RoleManufacturer))
	item := mustItem(t, "WIT1")
	r := s.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "acme", Item: item,
		Register: &provenance.Register{Product: "Witnessed tote"}}))
	if _, err := verifierPolicy.Verify([]byte(r.Checkpoint)); err != nil {
		t.Fatalf("the receipt's checkpoint lacks the witness's cosignature: %v", err)
	}
	code, bundle := s.get("/api/v1/items/" + item.GTIN + "/" + item.Serial + "/bundle")
	if code != http.StatusOK {
		t.Fatalf("bundle: %d %s", code, bundle)
	}
	trust := s.keys
	trust.Policy = &verifierPolicy
	if _, err := provenance.VerifyBundle(bundle, trust); err != nil {
		t.Fatalf("a witnessed bundle fails the policy requiring the witness: %v", err)
	}
	s.shutdown()

	// The same data directory served without the witness publishes
	// uncosigned checkpoints: its bundles fail that policy.
	s2 := startProvd(t, data)
	s2.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "acme", Item: mustItem(t, "WIT2"),
		Register: &provenance.Register{Product: "Unwitnessed tote"}}))
	_, bundle = s2.get("/api/v1/items/" + item.GTIN + "/WIT2/bundle")
	_, err = provenance.VerifyBundle(bundle, trust)
	if err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("a bundle without the witness's cosignature: %v, want a quorum failure", err)
	}
	trust.Policy = nil
	if _, err := provenance.VerifyBundle(bundle, trust); err != nil {
		t.Fatalf("the same bundle fails without a witness policy: %v", err)
	}
}
