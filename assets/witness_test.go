package assets

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/witness"
	"github.com/provtrail/provtrail/provenance"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// newWitness starts a merkle/witness.Witness for the log of trust, served
// over HTTP, and returns its URL and cosignature/v1 verifier key.
func newWitness(t *testing.T, trust provenance.Trust, name string) (url, vkey string) {
	t.Helper()
	skey, v, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	if vkey, err = fnote.VKeyToCosignatureV1(v); err != nil {
		t.Fatal(err)
	}
	lv, err := note.NewVerifier(trust.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Signer: signer, Logs: []note.Verifier{lv}, StatePath: filepath.Join(t.TempDir(), "w.state")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return srv.URL, vkey
}

// withCheckpoint returns the bundle raw with its checkpoint, in the
// bundle and in every proof, replaced by cp, re-encoded canonically.
func withCheckpoint(t *testing.T, raw []byte, cp string) []byte {
	b := decodeBundle(t, raw)
	old := b.Checkpoint
	b.Checkpoint = cp
	for j := range b.Entries {
		b.Entries[j].Proof = strings.Replace(b.Entries[j].Proof, old, cp, 1)
	}
	return b.encode(t)
}

// witnessedBundle has the checked-in good bundle's checkpoint cosigned by
// a real witness over HTTP (witness.Cosign, as merkle/witness.Witnessed
// does) and returns the bundle carrying that cosigned checkpoint, with the
// witness's verifier key.
func witnessedBundle(t *testing.T, trust provenance.Trust, raw []byte) ([]byte, string) {
	t.Helper()
	url, vkey := newWitness(t, trust, "witness.test/w1")
	lv, _ := note.NewVerifier(trust.LogKey)
	cp, err := merkle.ParseCheckpoint([]byte(decodeBundle(t, raw).Checkpoint), trust.Origin, lv)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := witness.Cosign(t.Context(), http.DefaultClient, url, cp, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return withCheckpoint(t, raw, string(cosigned)), vkey
}

// tamperCosignature flips a bit of the Ed25519 signature in the last
// signature line (the cosignature) of the bundle's checkpoint.
func tamperCosignature(t *testing.T, raw []byte) []byte {
	cp := decodeBundle(t, raw).Checkpoint
	i := strings.LastIndex(cp, " ")
	sig := strings.TrimSuffix(cp[i+1:], "\n")
	return withCheckpoint(t, raw, cp[:i+1]+flipB64(t, sig, 4+8+20)+"\n")
}

// TestVerifyWitnessPolicy checks provtrailVerify's policy option on a
// bundle whose checkpoint a real witness cosigned: the policy requiring
// that witness accepts it, and rejects the same bundle without the
// cosignature or with a tampered one; Go's VerifyBundle with the same
// policy agrees on every case.
func TestVerifyWitnessPolicy(t *testing.T) {
	raw, trust := goodBundle(t)
	witnessed, w1 := witnessedBundle(t, trust, raw)
	// Removing the cosignature line and re-encoding gives the unwitnessed
	// bundle back, byte for byte.
	cp := decodeBundle(t, witnessed).Checkpoint
	stripped := withCheckpoint(t, witnessed, cp[:strings.LastIndex(cp, "\n\u2014 ")+1])
	if !bytes.Equal(stripped, raw) {
		t.Fatal("removing the cosignature does not give the unwitnessed bundle back")
	}
	_, w2 := newWitness(t, trust, "witness.test/w2") // a witness that never saw the log

	requireW1 := fmt.Sprintf("log %s\nwitness w1 %s\nquorum w1\n", trust.LogKey, w1)
	requireW2 := fmt.Sprintf("log %s\nwitness w2 %s\nquorum w2\n", trust.LogKey, w2)
	anyOf := fmt.Sprintf("# one of two\nlog %s\nwitness w1 %s\nwitness w2 %s\ngroup g any w1 w2\nquorum g\n", trust.LogKey, w1, w2)
	bothOf := fmt.Sprintf("log %s\nwitness w1 %s\nwitness w2 %s\ngroup g all w1 w2\nquorum g\n", trust.LogKey, w1, w2)
	noQuorum := fmt.Sprintf("log %s\nquorum none\n", trust.LogKey)
	cases := []struct {
		name, policy string
		bundle       []byte
		ok           bool
		reason       string // a substring of the JS reason
	}{
		{name: "witnessed", policy: requireW1, bundle: witnessed, ok: true},
		{name: "witnessed-no-policy", bundle: witnessed, ok: true},
		{name: "witnessed-group-any", policy: anyOf, bundle: witnessed, ok: true},
		{name: "unwitnessed-no-quorum", policy: noQuorum, bundle: raw, ok: true},
		{name: "unwitnessed-no-policy", bundle: raw, ok: true},
		{name: "cosignature-removed", policy: requireW1, bundle: stripped,
			reason: "checkpoint lacks the witness cosignatures the quorum w1 needs"},
		{name: "other-witness", policy: requireW2, bundle: witnessed,
			reason: "checkpoint lacks the witness cosignatures the quorum w2 needs"},
		{name: "group-all", policy: bothOf, bundle: witnessed,
			reason: "checkpoint lacks the witness cosignatures the quorum g needs"},
		{name: "cosignature-tampered", policy: requireW1, bundle: tamperCosignature(t, witnessed),
			reason: "the checkpoint cosignature by the witness w1 is invalid"},
		{name: "policy-of-another-log", policy: fmt.Sprintf("log %s\nwitness w1 %s\nquorum w1\n", newVerifierKey(t, trust.Origin), w1),
			bundle: witnessed, reason: "not signed by a log the policy trusts"},
	}

	srv := newServer(t, func(*http.Request) any {
		return map[string]string{"BundleURL": "/none", "Origin": trust.Origin, "LogKey": trust.LogKey, "OperatorKey": trust.OperatorKey}
	}, nil)
	ctx := newTab(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/t/verify")); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := trust
			if c.policy != "" {
				p, err := merkle.ParsePolicy([]byte(c.policy))
				if err != nil {
					t.Fatal(err)
				}
				tr.Policy = &p
			}
			_, goErr := provenance.VerifyBundle(c.bundle, tr)
			if (goErr == nil) != c.ok {
				t.Fatalf("Go VerifyBundle: err = %v, want ok = %v", goErr, c.ok)
			}
			res := jsVerify(t, ctx, c.bundle, map[string]string{"origin": trust.Origin, "logKey": trust.LogKey,
				"operatorKey": trust.OperatorKey, "policy": c.policy})
			t.Logf("Go: %v\nJS: %s", goErr, res.Error)
			if res.OK != c.ok || (!c.ok && !strings.Contains(res.Error, c.reason)) {
				t.Fatalf("provtrailVerify: ok %v, %q; want ok %v saying %q", res.OK, res.Error, c.ok, c.reason)
			}
			if c.ok && c.policy != "" && (res.Witnessed == nil || res.Witnessed.Quorum == "") {
				t.Errorf("witnessed = %+v, want the quorum met", res.Witnessed)
			}
		})
	}

	// prov's policy file: the C2SP policy and an operator line; the
	// operator and log keys then need not be pinned separately.
	t.Run("prov-policy-file", func(t *testing.T) {
		file := requireW1 + "operator " + trust.OperatorKey + "\n"
		for _, tc := range []struct {
			bundle []byte
			ok     bool
		}{{witnessed, true}, {stripped, false}} {
			res := jsVerify(t, ctx, tc.bundle, map[string]string{"policy": file})
			if res.OK != tc.ok {
				t.Errorf("prov policy file: ok %v (%s), want %v", res.OK, res.Error, tc.ok)
			}
		}
	})

	// Malformed policies fail with the line at fault.
	t.Run("bad-policy", func(t *testing.T) {
		for _, bad := range []string{
			"log " + trust.LogKey + "\n", // no quorum
			"log " + trust.LogKey + "\nquorum w1\n",
			"log " + trust.LogKey + "\nwitness w1 " + trust.LogKey + "\nquorum w1\n", // not a 0x04 key
			"log " + trust.LogKey + "\nwitness w1 " + w1 + "\ngroup g 2 w1\nquorum g\n",
			"log " + trust.LogKey + "\nwitnesses w1 " + w1 + "\nquorum none\n",
		} {
			if _, err := merkle.ParsePolicy([]byte(bad)); err == nil {
				t.Errorf("Go accepts the policy %q", bad)
			}
			res := jsVerify(t, ctx, witnessed, map[string]string{"origin": trust.Origin, "logKey": trust.LogKey,
				"operatorKey": trust.OperatorKey, "policy": bad})
			if res.OK || !strings.Contains(res.Error, "policy") {
				t.Errorf("policy %q: ok %v, %q; want a policy error", bad, res.OK, res.Error)
			}
		}
	})
}

// jsResult is what provtrailVerify returns, in part.
type jsResult struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error"`
	Witnessed *struct {
		Quorum    string   `json:"quorum"`
		Witnesses []string `json:"witnesses"`
	} `json:"witnessed"`
}

// jsVerify calls window.provtrailVerify in the tab.
func jsVerify(t *testing.T, ctx context.Context, bundle []byte, trust map[string]string) jsResult {
	t.Helper()
	arg, _ := json.Marshal(map[string]any{"text": string(bundle), "trust": trust})
	var res jsResult
	if err := chromedp.Run(ctx, evalAsync(`(a => provtrailVerify(a.text, a.trust))(`+string(arg)+`)`, &res)); err != nil {
		t.Fatal(err)
	}
	return res
}
