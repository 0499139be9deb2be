package assets

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// bundleFile mirrors the proof bundle JSON (docs/bundle.md) so the tests
// can alter a bundle and write it back in its canonical form.
type bundleFile struct {
	Format      string        `json:"format"`
	Origin      string        `json:"origin"`
	LogKey      string        `json:"log_key"`
	OperatorKey string        `json:"operator_key"`
	Item        string        `json:"item"`
	Checkpoint  string        `json:"checkpoint"`
	Entries     []bundleEntry `json:"entries"`
}

type bundleEntry struct {
	Index uint64 `json:"index"`
	Leaf  []byte `json:"leaf"`
	Proof string `json:"proof"`
}

// encode writes b as provenance.BuildBundle does.
func (b bundleFile) encode(t *testing.T) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goodBundle reads the checked-in bundle and its pinned keys.
func goodBundle(t *testing.T) ([]byte, provenance.Trust) {
	t.Helper()
	raw, err := os.ReadFile("../provenance/testdata/good_bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := os.ReadFile("../provenance/testdata/good_bundle.trust")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(tr)), "\n")
	if len(lines) != 3 {
		t.Fatalf("good_bundle.trust has %d lines, want 3", len(lines))
	}
	return raw, provenance.Trust{Origin: lines[0], LogKey: lines[1], OperatorKey: lines[2]}
}

func decodeBundle(t *testing.T, raw []byte) bundleFile {
	var b bundleFile
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newVerifierKey(t *testing.T, name string) string {
	_, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

// flipB64 flips one bit of the base64 value s at byte i.
func flipB64(t *testing.T, s string, i int) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	b[i] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

type verifyCase struct {
	name   string
	bundle []byte
	trust  provenance.Trust
	ok     bool
	reason string // a substring of the reason verify.js must give
}

// verifyCases are the good bundle and tampered variants of it.
func verifyCases(t *testing.T) []verifyCase {
	raw, trust := goodBundle(t)
	mutate := func(f func(b *bundleFile)) []byte {
		b := decodeBundle(t, raw)
		f(&b)
		return b.encode(t)
	}
	otherLog := newVerifierKey(t, trust.Origin)
	otherOp := newVerifierKey(t, "operator")
	noncanonical, err := os.ReadFile("../provenance/testdata/fail_noncanonical_sig.bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	withLog, withOp := trust, trust
	withLog.LogKey, withOp.OperatorKey = otherLog, otherOp

	return []verifyCase{
		{name: "good", bundle: raw, trust: trust, ok: true},
		{name: "leaf-byte", trust: trust, reason: "inclusion proof does not lead to the checkpoint root",
			bundle: mutate(func(b *bundleFile) { b.Entries[2].Leaf[60] ^= 0x01 })},
		{name: "proof-hash", trust: trust, reason: "inclusion proof does not lead to the checkpoint root",
			bundle: mutate(func(b *bundleFile) {
				lines := strings.Split(b.Entries[1].Proof, "\n")
				lines[2] = flipB64(t, lines[2], 7)
				b.Entries[1].Proof = strings.Join(lines, "\n")
			})},
		{name: "checkpoint-signature", trust: trust, reason: "checkpoint signature by the log key is invalid",
			bundle: mutate(func(b *bundleFile) {
				old := b.Checkpoint
				i := strings.LastIndex(old, " ")
				sig := strings.TrimSuffix(old[i+1:], "\n")
				cp := old[:i+1] + flipB64(t, sig, 30) + "\n"
				b.Checkpoint = cp
				for j := range b.Entries { // the same checkpoint is in every proof
					b.Entries[j].Proof = strings.Replace(b.Entries[j].Proof, old, cp, 1)
				}
			})},
		{name: "other-log-key", bundle: raw, trust: withLog, reason: "another log key"},
		{name: "other-log-key-in-bundle", trust: withLog, reason: "not signed by the pinned log key",
			bundle: mutate(func(b *bundleFile) { b.LogKey = otherLog })},
		{name: "other-operator-key", bundle: raw, trust: withOp, reason: "another operator key"},
		{name: "other-operator-key-in-bundle", trust: withOp, reason: "signed by another key",
			bundle: mutate(func(b *bundleFile) { b.OperatorKey = otherOp })},
		{name: "handoff-removed", trust: trust, reason: "prev chain broken",
			bundle: mutate(func(b *bundleFile) { b.Entries = append(b.Entries[:3], b.Entries[4:]...) })},
		{name: "enrollment-removed", trust: trust, reason: `"acme" is not enrolled`,
			bundle: mutate(func(b *bundleFile) { b.Entries = b.Entries[1:] })},
		{name: "not-canonical", trust: trust, reason: "canonical form",
			bundle: bytes.Replace(raw, []byte(`"index": 4,`), []byte(`"index":4,`), 1)},
		// The receive's signature with its last base64 digit spelled
		// another way, in a log that holds that leaf.
		{name: "noncanonical-signature", trust: trust, reason: "signature base64 is not canonical",
			bundle: noncanonical},
	}
}

// TestVerifyPage clicks "Verify on this phone" for the good bundle and for
// every tampered one, and checks Go's VerifyBundle agrees on each.
func TestVerifyPage(t *testing.T) {
	cases := verifyCases(t)
	byName := map[string]verifyCase{}
	for _, c := range cases {
		byName[c.name] = c
	}
	srv := newServer(t, func(r *http.Request) any {
		c := byName[r.URL.Query().Get("case")]
		return map[string]string{"BundleURL": "/bundle/" + c.name + ".json",
			"Origin": c.trust.Origin, "LogKey": c.trust.LogKey, "OperatorKey": c.trust.OperatorKey}
	}, func(mux *http.ServeMux) {
		mux.HandleFunc("/bundle/{file}", func(w http.ResponseWriter, r *http.Request) {
			c, ok := byName[strings.TrimSuffix(r.PathValue("file"), ".json")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(c.bundle)
		})
	})
	ctx := newTab(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, goErr := provenance.VerifyBundle(c.bundle, c.trust)
			if (goErr == nil) != c.ok {
				t.Fatalf("Go VerifyBundle: err = %v, want ok = %v", goErr, c.ok)
			}
			var verified, text string
			err := chromedp.Run(ctx,
				chromedp.Navigate(srv.URL+"/t/verify?case="+c.name),
				chromedp.Click(`[data-testid=verify-button]`, chromedp.ByQuery),
				chromedp.WaitVisible(`[data-testid=verify-result][data-verified]`, chromedp.ByQuery),
				chromedp.AttributeValue(`[data-testid=verify-result]`, "data-verified", &verified, nil, chromedp.ByQuery),
				chromedp.Text(`[data-testid=verify-result]`, &text, chromedp.ByQuery),
			)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Go: %v\nJS: %s", goErr, text)
			if want := map[bool]string{true: "true", false: "false"}[c.ok]; verified != want {
				t.Fatalf("data-verified = %q, want %q; text: %s", verified, want, text)
			}
			if c.ok && !strings.HasPrefix(text, "Verified on this phone: 3 events") {
				t.Errorf("result = %q, want a summary of 3 events", text)
			}
			if !c.ok && (!strings.HasPrefix(text, "Verification failed: ") || !strings.Contains(text, c.reason)) {
				t.Errorf("result = %q, want a failure saying %q", text, c.reason)
			}
		})
	}
}

// TestVerifyAPI calls window.provtrailVerify directly and compares the
// events it proves with those Go's VerifyBundle returns.
func TestVerifyAPI(t *testing.T) {
	raw, trust := goodBundle(t)
	h, err := provenance.VerifyBundle(raw, trust)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, func(*http.Request) any {
		return map[string]string{"BundleURL": "/none", "Origin": trust.Origin, "LogKey": trust.LogKey, "OperatorKey": trust.OperatorKey}
	}, nil)
	ctx := newTab(t)
	arg, _ := json.Marshal(map[string]any{"text": string(raw),
		"trust": map[string]string{"origin": trust.Origin, "logKey": trust.LogKey, "operatorKey": trust.OperatorKey}})
	var res struct {
		OK     bool   `json:"ok"`
		Error  string `json:"error"`
		Item   string `json:"item"`
		Status string `json:"status"`
		Events []struct {
			Index    uint64 `json:"index"`
			Kind     string `json:"kind"`
			Actor    string `json:"actor"`
			Role     string `json:"role"`
			LeafHash string `json:"leafHash"`
		} `json:"events"`
	}
	err = chromedp.Run(ctx,
		chromedp.Navigate(srv.URL+"/t/verify"),
		evalAsync(`(a => provtrailVerify(a.text, a.trust))(`+string(arg)+`)`, &res),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("provtrailVerify: %s", res.Error)
	}
	if res.Item != h.Item.String() || res.Status != string(h.State.Status) || len(res.Events) != len(h.Events) {
		t.Fatalf("JS proved %+v; Go proved item %s, status %s, %d events", res, h.Item, h.State.Status, len(h.Events))
	}
	for i, e := range h.Events {
		got := res.Events[i]
		if got.Index != e.Index || got.Kind != string(e.Event.Kind) || got.Actor != e.Event.Actor ||
			got.Role != string(e.Role) || got.LeafHash != e.LeafHash.String() {
			t.Errorf("event %d: JS %+v, Go index %d %s by %s (%s) leaf hash %s", i, got, e.Index, e.Event.Kind, e.Event.Actor, e.Role, e.LeafHash)
		}
	}
}

// vectorReasons are what verify.js must say for each fail_ bundle vector
// in provenance/testdata.
var vectorReasons = map[string]string{
	"fail_noncanonical_sig.bundle.json":            "the event: signature base64 is not canonical",
	"fail_noncanonical_checkpoint_sig.bundle.json": "the checkpoint: signature base64 is not canonical",
	"fail_noncanonical_leaf_base64.bundle.json":    "the leaf is not canonical base64",
	"fail_two_signatures.bundle.json":              "the event has 2 signatures, want 1",
	"fail_tampered_proof.bundle.json":              "inclusion proof does not lead to the checkpoint root",
	"fail_missing_enrollment.bundle.json":          `"acme" is not enrolled`,
	"fail_tampered_text.bundle.json":               `the signature of "swift" on the receive event is invalid`,
	"fail_wrong_key.bundle.json":                   "signed by another key",
	"fail_checkpoint_wrong_key.bundle.json":        "not signed by the pinned log key",
	"fail_key_order.bundle.json":                   "canonical form",
	"fail_unknown_field.bundle.json":               "canonical form",
	"fail_time_before_previous.bundle.json":        "is before the item's previous event at 2026-03-01T09:04:00Z",
	"fail_time_before_enrollment.bundle.json":      "is before the enrollment of the signing key at 2026-03-01T09:01:00Z",
	"fail_bidi_text.bundle.json":                   "register.product: bidi control character U+2067 at byte 8",
}

// eventReasons are what verify.js's parseEvent must say for some of the
// fail_ event vectors in provenance/testdata: the field and the character.
var eventReasons = map[string]string{
	"fail_noncanonical_sig.event": "signature base64 is not canonical",
	"fail_bidi_override.event":    "register.product: bidi control character U+202E at byte 8",
	"fail_zero_width.event":       "place: zero-width character U+200B at byte 4",
	"fail_newline.event":          "register.description: control character U+000A at byte 12",
}

// TestVerifyVectors runs the in-browser verifier on every good_ and fail_
// bundle of provenance/testdata: it accepts exactly the ones Go's
// VerifyBundle accepts, and says why it refuses the others.
func TestVerifyVectors(t *testing.T) {
	_, trust := goodBundle(t)
	files, err := filepath.Glob("../provenance/testdata/fail_*.bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../provenance/testdata/good_bundle.json")
	srv := newServer(t, func(*http.Request) any {
		return map[string]string{"BundleURL": "/none", "Origin": trust.Origin, "LogKey": trust.LogKey, "OperatorKey": trust.OperatorKey}
	}, nil)
	ctx := newTab(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/t/verify")); err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, goErr := provenance.VerifyBundle(raw, trust)
			arg, _ := json.Marshal(map[string]any{"text": string(raw),
				"trust": map[string]string{"origin": trust.Origin, "logKey": trust.LogKey, "operatorKey": trust.OperatorKey}})
			var res struct {
				OK    bool   `json:"ok"`
				Error string `json:"error"`
			}
			if err := chromedp.Run(ctx, evalAsync(`(a => provtrailVerify(a.text, a.trust))(`+string(arg)+`)`, &res)); err != nil {
				t.Fatal(err)
			}
			t.Logf("Go: %v\nJS: %s", goErr, res.Error)
			if res.OK != (goErr == nil) {
				t.Fatalf("verify.js ok = %v (%s), Go: %v", res.OK, res.Error, goErr)
			}
			want, ok := vectorReasons[name]
			if !ok && !res.OK {
				t.Errorf("vectorReasons says nothing of %s", name)
			}
			if !res.OK && !strings.Contains(res.Error, want) {
				t.Errorf("verify.js says %q, want %q", res.Error, want)
			}
		})
	}
}

// TestParseEventVectors parses every good_ and fail_ event leaf of
// provenance/testdata with verify.js's parseEvent: it refuses exactly the
// leaves Go's ParseEvent refuses (the wrong key and tampered text ones
// parse, and fail when the signature is checked).
func TestParseEventVectors(t *testing.T) {
	files, err := filepath.Glob("../provenance/testdata/*.event")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, func(*http.Request) any { return map[string]string{"BundleURL": "/none"} }, nil)
	ctx := newTab(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/t/verify")); err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			leaf, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, goErr := provenance.ParseEvent(leaf)
			arg, _ := json.Marshal(base64.StdEncoding.EncodeToString(leaf))
			var jsErr string
			err = chromedp.Run(ctx, evalAsync(`(b64 => {
				try { provtrailVerifyLib.parseEvent(provtrailVerifyLib.b64decode(b64, 'leaf')); return ''; }
				catch (e) { return e.message || String(e); }
			})(`+string(arg)+`)`, &jsErr))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Go: %v\nJS: %s", goErr, jsErr)
			if (jsErr == "") != (goErr == nil) {
				t.Fatalf("verify.js parseEvent: %q; Go ParseEvent: %v", jsErr, goErr)
			}
			if want, ok := eventReasons[name]; ok && !strings.Contains(jsErr, want) {
				t.Errorf("verify.js says %q, want it to say %q", jsErr, want)
			}
		})
	}
}

// TestCheckpointVectors checks every good_ and fail_ checkpoint of
// merkle/testdata with verify.js's verifyCheckpoint against the log key in
// merkle/testdata/log.vkey: it refuses exactly the checkpoints Go's
// merkle.ParseCheckpoint refuses.
func TestCheckpointVectors(t *testing.T) {
	files, err := filepath.Glob("../merkle/testdata/*.checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../merkle/testdata/log.vkey")
	if err != nil {
		t.Fatal(err)
	}
	vkey := strings.TrimSpace(string(b))
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, func(*http.Request) any { return map[string]string{"BundleURL": "/none"} }, nil)
	ctx := newTab(t)
	if err := chromedp.Run(ctx, chromedp.Navigate(srv.URL+"/t/verify")); err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			cp, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, goErr := merkle.ParseCheckpoint(cp, v.Name(), v)
			arg, _ := json.Marshal(map[string]string{"cp": string(cp), "origin": v.Name(), "vkey": vkey})
			var jsErr string
			err = chromedp.Run(ctx, evalAsync(`(async a => {
				const lib = provtrailVerifyLib;
				try { await lib.verifyCheckpoint(a.cp, a.origin, await lib.parseVerifierKey(a.vkey, 'the log key')); return ''; }
				catch (e) { return e.message || String(e); }
			})(`+string(arg)+`)`, &jsErr))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Go: %v\nJS: %s", goErr, jsErr)
			if (jsErr == "") != (goErr == nil) {
				t.Fatalf("verify.js verifyCheckpoint: %q; Go ParseCheckpoint: %v", jsErr, goErr)
			}
			if strings.Contains(name, "noncanonical") && !strings.Contains(jsErr, "signature base64 is not canonical") {
				t.Errorf("verify.js says %q, want it to say the signature base64 is not canonical", jsErr)
			}
		})
	}
}
