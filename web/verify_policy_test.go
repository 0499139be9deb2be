package web_test

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// TestE2EVerifyPagePolicy pastes a witness policy into the offline
// verifier's policy box: this server's bundles carry no cosignature, so a
// policy requiring a witness fails them with the quorum message, a
// policy of quorum none and an empty box accept them; Go's VerifyBundle
// with the same policies agrees.
func TestE2EVerifyPagePolicy(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	good := readBundle(t, e, id)
	trust := e.node.Service.Trust()
	_, wv, err := note.GenerateKey(rand.Reader, "witness.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := fnote.VKeyToCosignatureV1(wv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := newPhone(t)
	run(t, ctx, "open the verifier", chromedp.Navigate(e.srv.URL+"/verify"))
	for _, tc := range []struct {
		name, policy string
		ok           bool
		reason       string
	}{
		{"requires-w1", fmt.Sprintf("log %s\nwitness w1 %s\nquorum w1\n", trust.LogKey, w1), false,
			"checkpoint lacks the witness cosignatures the quorum w1 needs"},
		{"quorum-none", fmt.Sprintf("log %s\nquorum none\n", trust.LogKey), true, "5 events"},
		{"no-policy", "", true, "5 events"},
	} {
		tr := trust
		if tc.policy != "" {
			p, err := merkle.ParsePolicy([]byte(tc.policy))
			if err != nil {
				t.Fatal(err)
			}
			tr.Policy = &p
		}
		if _, err := provenance.VerifyBundle(good, tr); (err == nil) != tc.ok {
			t.Errorf("%s: Go VerifyBundle: %v, want ok=%v", tc.name, err, tc.ok)
		}
		js, _ := json.Marshal(tc.policy) // SetValue cannot set an empty value
		run(t, ctx, "paste the policy", chromedp.Evaluate(`document.querySelector('[data-testid=verify-policy]').value = `+string(js), nil))
		verified, text := pasteAndVerify(t, ctx, string(good))
		t.Logf("%s: %s", tc.name, text)
		if (verified == "true") != tc.ok || !strings.Contains(text, tc.reason) {
			t.Errorf("%s: data-verified %q, %q; want ok=%v saying %q", tc.name, verified, text, tc.ok, tc.reason)
		}
	}
}
