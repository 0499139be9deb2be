package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/PuerkitoBio/goquery"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/provenance"
)

func bundlePath(id provenance.ItemID) string {
	return "/api/v1/items/" + id.GTIN + "/" + id.Serial + "/bundle"
}

// TestVerifyPageServer checks what the server sends for the verifier: the
// page with this server's keys prefilled and no inline script, the refusal
// of a ?bundle= of another origin, and the standalone file.
func TestVerifyPageServer(t *testing.T) {
	e := newEnv(t, true)
	trust := e.node.Service.Trust()

	res, body := e.get("/verify?bundle=" + url.QueryEscape("/api/v1/items/09506000134352/21/X/bundle"))
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /verify: %d\n%s", res.StatusCode, body)
	}
	d := doc(t, body)
	for sel, want := range map[string]string{"[data-testid=origin]": trust.Origin, "[data-testid=log-key]": trust.LogKey, "[data-testid=operator-key]": trust.OperatorKey} {
		if got, _ := d.Find(sel).Attr("value"); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	if got, _ := d.Find("[data-testid=verifier]").Attr("data-bundle-url"); got != "/api/v1/items/09506000134352/21/X/bundle" {
		t.Errorf("data-bundle-url = %q", got)
	}
	if !strings.Contains(d.Find("[data-testid=keys-note]").Text(), "published elsewhere") {
		t.Errorf("the keys note does not tell users to pin keys published elsewhere")
	}
	d.Find("script").Each(func(_ int, s *goquery.Selection) {
		if src, ok := s.Attr("src"); !ok || !strings.HasPrefix(src, "/assets/") || strings.TrimSpace(s.Text()) != "" {
			t.Errorf("a script that is not from /assets: src %q, text %q", src, s.Text())
		}
	})
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	res, body = e.get("/verify?lang=zh")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "验证证明包") {
		t.Errorf("GET /verify?lang=zh: %d, no Chinese title", res.StatusCode)
	}

	for _, bad := range []string{"//evil.example/b.json", "https://evil.example/b.json", "javascript:alert(1)", "b.json", "", "/a\\b"} {
		res, body := e.get("/verify?bundle=" + url.QueryEscape(bad))
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "?bundle=") {
			t.Errorf("GET /verify?bundle=%q: %d, want 400 saying what is wrong", bad, res.StatusCode)
		}
	}
	// A URL of this server's public host is taken as its path.
	res, body = e.get("/verify?bundle=" + url.QueryEscape(baseURL+"/api/v1/items/x/y/bundle#f"))
	if got, _ := doc(t, body).Find("[data-testid=verifier]").Attr("data-bundle-url"); res.StatusCode != http.StatusOK || got != "/api/v1/items/x/y/bundle" {
		t.Errorf("?bundle= of the base URL: %d, data-bundle-url %q", res.StatusCode, got)
	}

	res, body = e.get("/verify/standalone.html")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /verify/standalone.html: %d", res.StatusCode)
	}
	if cd := res.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("Content-Disposition = %q, want an attachment", cd)
	}
	page := string(body)
	for _, ref := range []string{"src=", "href=\"/", "<link"} {
		if strings.Contains(page, ref) {
			t.Errorf("the standalone file refers to something outside it: %q", ref)
		}
	}
	scripts := regexp.MustCompile(`(?s)<script>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	styles := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(page, -1)
	if len(scripts) != 1 || len(styles) != 1 {
		t.Fatalf("standalone has %d inline scripts and %d styles, want one each", len(scripts), len(styles))
	}
	meta := doc(t, body).Find(`meta[http-equiv=Content-Security-Policy]`)
	csp, _ := meta.Attr("content")
	for _, inline := range []string{scripts[0][1], styles[0][1]} {
		sum := sha256.Sum256([]byte(inline))
		if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, h) {
			t.Errorf("meta CSP %q does not allow the inline text by its hash %s", csp, h)
		}
	}
	if !strings.Contains(csp, "connect-src 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("meta CSP = %q", csp)
	}
	if !strings.Contains(scripts[0][1], "window.provtrailVerify = provtrailVerify") {
		t.Error("the standalone script does not hold verify.js")
	}
}

// readBundle returns the real bundle of id.
func readBundle(t *testing.T, e *env, id provenance.ItemID) []byte {
	t.Helper()
	b, err := e.node.Service.Bundle(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goOffline cuts the tab off the network.
func goOffline() chromedp.Action {
	return chromedp.Tasks{network.Enable(), network.EmulateNetworkConditions(true, 0, -1, -1)}
}

// outcome waits for the verifier's outcome and returns data-verified and
// its text.
func outcome(t *testing.T, ctx context.Context) (verified, text string) {
	t.Helper()
	const out = `[data-testid=verify-outcome]`
	run(t, ctx, "wait for the outcome",
		chromedp.WaitReady(out+`[data-verified]`, chromedp.ByQuery),
		chromedp.AttributeValue(out, "data-verified", &verified, nil, chromedp.ByQuery),
		chromedp.Text(out, &text, chromedp.ByQuery),
	)
	return verified, text
}

// pasteAndVerify puts text in the paste box, as a paste would, and
// presses Verify.
func pasteAndVerify(t *testing.T, ctx context.Context, text string) (verified, out string) {
	t.Helper()
	run(t, ctx, "paste a bundle",
		chromedp.SetValue(`[data-testid=bundle-text]`, text, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid=verify-outcome]').removeAttribute('data-verified')`, nil),
		chromedp.Click(`[data-testid=verify-bundle]`, chromedp.ByQuery),
	)
	return outcome(t, ctx)
}

// TestE2EVerifyPageOffline loads /verify with ?bundle= of a seeded item,
// then cuts the network: pasted bundles, good and tampered, and a bundle
// file are all checked in the browser with no request.
func TestE2EVerifyPageOffline(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	good := readBundle(t, e, id)
	ctx := newPhone(t)

	run(t, ctx, "open the verifier", chromedp.Navigate(e.srv.URL+"/verify?bundle="+url.QueryEscape(bundlePath(id))))
	verified, text := outcome(t, ctx)
	t.Logf("?bundle: %s", text)
	if verified != "true" || !strings.Contains(text, "5 events of "+id.String()) {
		t.Fatalf("?bundle: data-verified %q, %q", verified, text)
	}
	var nEvents int
	var status string
	run(t, ctx, "read the history",
		chromedp.WaitVisible(`[data-testid=verified-history]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('[data-testid=verified-event]').length`, &nEvents),
		chromedp.Text(`[data-testid=verified-status]`, &status, chromedp.ByQuery),
	)
	if nEvents != chainEvents || !strings.Contains(status, "in custody") {
		t.Errorf("verified history: %d events, status %q", nEvents, status)
	}

	run(t, ctx, "go offline", goOffline())
	var online bool
	run(t, ctx, "check offline", chromedp.Evaluate(`fetch('/keys').then(() => true, () => false)`, &online, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if online {
		t.Fatal("the tab still reaches the server after going offline")
	}

	for _, tc := range []struct {
		name   string
		bundle []byte
		ok     bool
		reason string
	}{
		{"tampered-leaf", flipLeafByte(t, good), false, "inclusion proof does not lead to the checkpoint root"},
		{"tampered-checkpoint", flipCheckpointSigByte(t, good), false, "checkpoint signature by the log key is invalid"},
		{"good", good, true, "5 events"},
	} {
		verified, text := pasteAndVerify(t, ctx, string(tc.bundle))
		t.Logf("%s: %s", tc.name, text)
		if (verified == "true") != tc.ok || !strings.Contains(text, tc.reason) {
			t.Errorf("%s: data-verified %q, %q; want ok=%v saying %q", tc.name, verified, text, tc.ok, tc.reason)
		}
	}

	// Wrong pinned key: the user pasted a key published elsewhere that
	// this bundle was not made for.
	run(t, ctx, "pin another operator key",
		chromedp.SetValue(`[data-testid=operator-key]`, otherKey(t), chromedp.ByQuery))
	if verified, text := pasteAndVerify(t, ctx, string(good)); verified != "false" || !strings.Contains(text, "another operator key") {
		t.Errorf("other operator key: %q, %q", verified, text)
	}
	run(t, ctx, "pin the operator key back",
		chromedp.SetValue(`[data-testid=operator-key]`, e.node.Service.Trust().OperatorKey, chromedp.ByQuery))

	// A bundle file, chosen with the file input, offline.
	path := filepath.Join(t.TempDir(), "tampered.json")
	if err := os.WriteFile(path, flipLeafByte(t, good), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "choose a file",
		chromedp.Evaluate(`document.querySelector('[data-testid=verify-outcome]').removeAttribute('data-verified')`, nil),
		chromedp.SetUploadFiles(`[data-testid=bundle-file]`, []string{path}, chromedp.ByQuery))
	if verified, text := outcome(t, ctx); verified != "false" || !strings.Contains(text, "Verification failed") {
		t.Errorf("tampered file: %q, %q", verified, text)
	}
}

// TestE2EVerifyStandaloneFromDisk saves the standalone verifier to disk,
// opens it from file:// and checks a bundle file with it.
func TestE2EVerifyStandaloneFromDisk(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	dir := t.TempDir()
	res, body := e.get("/verify/standalone.html")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /verify/standalone.html: %d", res.StatusCode)
	}
	page := filepath.Join(dir, "provtrail-verify.html")
	good := filepath.Join(dir, "item.bundle.json")
	bad := filepath.Join(dir, "tampered.bundle.json")
	for p, b := range map[string][]byte{page: body, good: readBundle(t, e, id), bad: flipCheckpointSigByte(t, readBundle(t, e, id))} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := newPhone(t)
	run(t, ctx, "open the saved page", goOffline(), chromedp.Navigate("file://"+page),
		chromedp.WaitReady(`[data-testid=bundle-file]`, chromedp.ByQuery))
	for _, tc := range []struct {
		file string
		ok   bool
		want string
	}{
		{bad, false, "checkpoint signature by the log key is invalid"},
		{good, true, "5 events of " + id.String()},
	} {
		run(t, ctx, "choose "+filepath.Base(tc.file),
			chromedp.Evaluate(`document.querySelector('[data-testid=verify-outcome]').removeAttribute('data-verified')`, nil),
			chromedp.SetUploadFiles(`[data-testid=bundle-file]`, []string{tc.file}, chromedp.ByQuery))
		verified, text := outcome(t, ctx)
		t.Logf("%s: %s", filepath.Base(tc.file), text)
		if (verified == "true") != tc.ok || !strings.Contains(text, tc.want) {
			t.Errorf("%s: data-verified %q, %q; want ok=%v saying %q", filepath.Base(tc.file), verified, text, tc.ok, tc.want)
		}
	}
}

// otherKey returns an operator verifier key the test server does not use.
func otherKey(t *testing.T) string {
	t.Helper()
	_, vkey := newSigner(t, provenance.OperatorID)
	return vkey
}
