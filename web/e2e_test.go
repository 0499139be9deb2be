package web_test

// End-to-end tests: the real pages, served by the real web.Server over a
// real bbolt log (newEnv), in headless Debian chromium at a phone viewport,
// driven from Go with chromedp. One chromium per test binary; every test
// gets its own browser context (a fresh profile: its own IndexedDB, so its
// own WebCrypto key). Any uncaught JavaScript exception or Content
// Security Policy violation fails the test.
//
// Run them with: go test -run E2E ./web
// Refresh docs/phone.png with: PROVTRAIL_SCREENSHOT=1 go test ./web -run TestE2EScreenshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

const chromiumPath = "/usr/bin/chromium"

// The phone: an iPhone 14's CSS viewport and pixel ratio, as a mobile
// Chrome on Android would report itself (the engine is Chromium).
const (
	phoneWidth  = 390
	phoneHeight = 844
	phoneScale  = 3
	phoneUA     = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
)

// browser is the one chromium of this test binary, started on first use
// and stopped by TestMain.
var browser struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	dir    string
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if browser.cancel != nil {
		browser.cancel()
	}
	if browser.dir != "" {
		os.RemoveAll(browser.dir)
	}
	os.Exit(code)
}

func startBrowser() {
	dir, err := os.MkdirTemp("", "provtrail-e2e-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	browser.dir = dir
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(dir),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("hide-scrollbars", true),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	browser.ctx = ctx
	browser.cancel = func() { cancelCtx(); cancelAlloc() }
	browser.err = chromedp.Run(ctx) // starts chromium
}

// newPhone returns the context of a new tab in a fresh browser context (a
// fresh profile), emulating a phone. It skips the test when chromium is
// not installed, unless CI is set. Uncaught JavaScript exceptions and CSP
// violations are collected and fail the test when it ends.
func newPhone(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (apt-get install chromium); CI is set, so this is a failure", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install chromium to run the end-to-end tests", chromiumPath)
	}
	browser.once.Do(startBrowser)
	if browser.err != nil {
		t.Fatalf("start chromium: %v", browser.err)
	}
	tab, err := newProfileTab()
	if err != nil {
		t.Fatalf("open a tab in a fresh profile: %v", err)
	}
	ctx, cancel := chromedp.NewContext(browser.ctx, chromedp.WithTargetID(tab.target))
	var mu sync.Mutex
	var problems []string
	chromedp.ListenTarget(ctx, func(ev any) {
		var p string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			p = "uncaught JavaScript exception: " + exceptionText(ev.ExceptionDetails)
		case *log.EventEntryAdded:
			if strings.Contains(ev.Entry.Text, "Content Security Policy") || strings.Contains(ev.Entry.Text, "Content-Security-Policy") {
				p = "CSP violation: " + ev.Entry.Text
			}
		}
		if p != "" {
			mu.Lock()
			problems = append(problems, p)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("close tab: %v", err)
		}
		cancel()
		if err := tab.dispose(); err != nil {
			t.Logf("dispose of the profile: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 30*time.Second)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Run(ctx, emulatePhone()); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	return ctx
}

// A profileTab is a tab in its own browser context: a fresh profile, with
// its own storage.
type profileTab struct {
	profile cdp.BrowserContextID
	target  target.ID
}

// newProfileTab creates a browser context and a tab in it. The tab is
// opened as a new window: new headless chromium refuses to open a tab in
// a browser context that has no window yet ("no browser is open"), which
// is what chromedp.WithNewBrowserContext asks for.
func newProfileTab() (profileTab, error) {
	var tab profileTab
	err := chromedp.Run(browser.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		exec := cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser)
		var err error
		if tab.profile, err = target.CreateBrowserContext().WithDisposeOnDetach(true).Do(exec); err != nil {
			return err
		}
		tab.target, err = target.CreateTarget("about:blank").WithBrowserContextID(tab.profile).WithNewWindow(true).Do(exec)
		return err
	}))
	return tab, err
}

func (tab profileTab) dispose() error {
	return chromedp.Run(browser.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		return target.DisposeBrowserContext(tab.profile).Do(cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser))
	}))
}

func emulatePhone() chromedp.Action {
	return chromedp.Tasks{
		emulation.SetUserAgentOverride(phoneUA).WithAcceptLanguage("en-GB,en").WithPlatform("Linux armv8l"),
		emulation.SetDeviceMetricsOverride(phoneWidth, phoneHeight, phoneScale, true).
			WithScreenOrientation(&emulation.ScreenOrientation{Type: emulation.OrientationTypePortraitPrimary, Angle: 0}),
		emulation.SetTouchEmulationEnabled(true),
	}
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return ""
	}
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.Text
}

// run runs actions in the phone's tab, failing the test on error.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// The cast of the seeded history: a leather workshop in Guangzhou, a
// courier, and a boutique in Hong Kong.
const (
	makerID    = "lin-leather"
	courierID  = "sf-express-sz"
	resellerID = "harbour-boutique"
	product    = "Lin Classic tote, tan calfskin"
	e2eGTIN    = "09506000134352"
)

// cast enrolls the manufacturer, the courier and the reseller.
func cast(e *env) {
	e.t.Helper()
	e.enroll(makerID, provenance.RoleManufacturer, "Lin Leatherworks, Guangzhou")
	e.enroll(courierID, provenance.RoleCourier, "SF Express Shenzhen")
	e.enroll(resellerID, provenance.RoleReseller, "Harbour Boutique")
}

// newItem registers a fresh item (an unguessable serial) in Guangzhou.
func newItem(e *env) provenance.ItemID {
	e.t.Helper()
	serial, err := provenance.NewSerial(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	id := mustItem(e.t, e2eGTIN, serial)
	e.ok(e.sign(provenance.Event{Kind: provenance.KindRegister, Actor: makerID, Item: id, Place: "Guangzhou",
		Register: &provenance.Register{Product: product, Lot: "2026-02-TAN"}}, e.keys[makerID]))
	return id
}

// seedChain registers an item that travels from the workshop to the
// boutique by courier: five item events, the boutique holds it.
func seedChain(e *env) provenance.ItemID {
	e.t.Helper()
	cast(e)
	id := newItem(e)
	e.ok(e.handoffLeaf(makerID, id, provenance.Handoff{To: courierID}))
	e.ok(e.receiveLeaf(courierID, id, "Guangzhou"))
	e.ok(e.handoffLeaf(courierID, id, provenance.Handoff{To: resellerID}))
	e.ok(e.receiveLeaf(resellerID, id, "Hong Kong"))
	return id
}

// chainEvents is how many item events seedChain logs.
const chainEvents = 5

// pageURL is the history page of id on srv (the path of its Digital Link).
func pageURL(srv *httptest.Server, id provenance.ItemID) string {
	return srv.URL + id.DigitalLink("")
}

// inViewport reports whether the whole element matching sel is inside the
// viewport as it stands (no scrolling).
func inViewport(sel string, res *bool) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(() => {
		const r = document.querySelector(%q).getBoundingClientRect();
		return r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;
	})()`, sel), res)
}

// verifyOnPhone presses "Verify on this phone" and waits for the outcome:
// data-verified and the text shown.
func verifyOnPhone(t *testing.T, ctx context.Context) (verified, text string) {
	t.Helper()
	const out = `[data-testid=verify-result]`
	var ok bool
	run(t, ctx, "verify on this phone",
		chromedp.WaitVisible(`[data-testid=verify-button]`, chromedp.ByQuery),
		chromedp.Click(`[data-testid=verify-button]`, chromedp.ByQuery),
		chromedp.WaitReady(out+`[data-verified]`, chromedp.ByQuery),
		chromedp.AttributeValue(out, "data-verified", &verified, &ok, chromedp.ByQuery),
		chromedp.Text(out, &text, chromedp.ByQuery),
	)
	return verified, text
}

// TestE2EVerifyOnPhone opens a seeded item's history page on a phone: the
// verdict is on the first screen, and the in-browser check of the proof
// bundle succeeds and counts the item's events.
func TestE2EVerifyOnPhone(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	ctx := newPhone(t)

	var word, sentence string
	var verdictVisible bool
	run(t, ctx, "open the history page",
		chromedp.Navigate(pageURL(e.srv, id)),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
		inViewport(`[data-testid=verdict]`, &verdictVisible),
		chromedp.Text(`[data-testid=verdict] .verdict-word`, &word, chromedp.ByQuery),
		chromedp.Text(`[data-testid=verdict] .verdict-text`, &sentence, chromedp.ByQuery),
	)
	if !verdictVisible {
		t.Error("the verdict is not wholly on the first screen of a 390x844 phone")
	}
	if word != "Genuine" || !strings.Contains(sentence, "Harbour Boutique") {
		t.Errorf("verdict = %q / %q, want Genuine, in the custody of Harbour Boutique", word, sentence)
	}

	verified, text := verifyOnPhone(t, ctx)
	if verified != "true" {
		t.Fatalf("verify-result data-verified = %q, text %q; want true", verified, text)
	}
	if want := fmt.Sprintf("%d events", chainEvents); !strings.Contains(text, want) {
		t.Errorf("verify-result = %q, want it to mention %q", text, want)
	}
	t.Logf("verify-result: %s", text)
}

// tamperServer serves e's pages, but answers the bundle of id with
// tamper(bundle) instead of the real bundle.
func tamperServer(t *testing.T, e *env, id provenance.ItemID, tamper func(t *testing.T, bundle []byte) []byte) *httptest.Server {
	t.Helper()
	bundlePath := "/api/v1/items/" + id.GTIN + "/" + id.Serial + "/bundle"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != bundlePath {
			e.server.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		e.server.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK {
			body = tamper(t, body)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// bundleFields is what the tampering needs of a bundle.
type bundleFields struct {
	Checkpoint string `json:"checkpoint"`
	Entries    []struct {
		Index uint64 `json:"index"`
		Leaf  []byte `json:"leaf"`
	} `json:"entries"`
}

// replaceOnce replaces the one occurrence of old in b.
func replaceOnce(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	if n := bytes.Count(b, []byte(old)); n != 1 {
		t.Fatalf("%q occurs %d times in the bundle, want once", old, n)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// flipLeafByte flips one bit of one byte in the register event's leaf:
// "Guangzhou" becomes "guangzhou". Everything else is left byte for byte.
func flipLeafByte(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var b bundleFields
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	for _, en := range b.Entries {
		if !bytes.Contains(en.Leaf, []byte(`"kind":"register"`)) {
			continue
		}
		i := bytes.Index(en.Leaf, []byte("Guangzhou"))
		if i < 0 {
			t.Fatalf("register leaf has no place:\n%s", en.Leaf)
		}
		leaf := bytes.Clone(en.Leaf)
		leaf[i] ^= 0x20
		return replaceOnce(t, bundle, base64.StdEncoding.EncodeToString(en.Leaf), base64.StdEncoding.EncodeToString(leaf))
	}
	t.Fatal("the bundle has no register leaf")
	return nil
}

// flipCheckpointSigByte flips one byte of the Ed25519 signature in the
// bundle's checkpoint note (after the 4-byte key hash).
func flipCheckpointSigByte(t *testing.T, bundle []byte) []byte {
	t.Helper()
	var b bundleFields
	if err := json.Unmarshal(bundle, &b); err != nil {
		t.Fatal(err)
	}
	_, sigs, ok := strings.Cut(b.Checkpoint, "\n\n")
	if !ok {
		t.Fatalf("checkpoint note has no signature block:\n%s", b.Checkpoint)
	}
	line, _, _ := strings.Cut(sigs, "\n")
	sig64 := line[strings.LastIndexByte(line, ' ')+1:]
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if err != nil || len(sig) != 4+64 {
		t.Fatalf("checkpoint signature line %q: %v", line, err)
	}
	sig[4+10] ^= 0x01
	// Every entry's tlog-proof carries the checkpoint too; flip the one
	// in the bundle's own "checkpoint" field, which comes first.
	i := bytes.Index(bundle, []byte(sig64))
	if j := bytes.Index(bundle, []byte(`"entries"`)); i < 0 || j < i {
		t.Fatalf("the checkpoint signature is not before the entries")
	}
	out := bytes.Clone(bundle)
	copy(out[i:], base64.StdEncoding.EncodeToString(sig))
	return out
}

// TestE2ETamperedBundle serves the page with a bundle one byte of which
// was changed, in a leaf or in the checkpoint's signature: the phone says
// verification failed, as provenance.VerifyBundle does in Go.
func TestE2ETamperedBundle(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	for _, tc := range []struct {
		name   string
		tamper func(*testing.T, []byte) []byte
	}{
		{"leaf", flipLeafByte},
		{"checkpoint-signature", flipCheckpointSigByte},
	} {
		t.Run(tc.name, func(t *testing.T) {
			real, err := e.node.Service.Bundle(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := provenance.VerifyBundle(tc.tamper(t, real), e.node.Service.Trust()); err == nil {
				t.Fatal("the tampered bundle verifies in Go: the tampering changed nothing")
			}
			srv := tamperServer(t, e, id, tc.tamper)
			ctx := newPhone(t)
			run(t, ctx, "open the history page", chromedp.Navigate(pageURL(srv, id)))
			verified, text := verifyOnPhone(t, ctx)
			t.Logf("verify-result: %s", text)
			if verified != "false" {
				t.Errorf("verify-result data-verified = %q for a tampered bundle, want false", verified)
			}
			if !strings.Contains(strings.ToLower(text), "verification failed") {
				t.Errorf("verify-result = %q, want it to say verification failed", text)
			}
		})
	}
}

// formResult fills the named fields of a signed form, submits it with its
// button, and waits for its outcome: data-ok and the text shown.
func formResult(t *testing.T, ctx context.Context, form string, fields map[string]string) (ok, text string) {
	t.Helper()
	sel := `[data-testid=` + form + `]`
	out := sel + ` output`
	actions := []chromedp.Action{chromedp.WaitVisible(sel+` button`, chromedp.ByQuery)}
	typed := map[string]*string{}
	for name, v := range fields {
		f := sel + ` [name=` + name + `]`
		typed[name] = new(string)
		actions = append(actions, clearField(f), chromedp.SendKeys(f, v, chromedp.ByQuery),
			chromedp.Value(f, typed[name], chromedp.ByQuery))
	}
	actions = append(actions, chromedp.ActionFunc(func(context.Context) error {
		for name, v := range fields {
			if *typed[name] != v {
				return fmt.Errorf("field %s holds %q after typing %q", name, *typed[name], v)
			}
		}
		return nil
	}))
	var present bool
	actions = append(actions,
		chromedp.Click(sel+` button`, chromedp.ByQuery),
		chromedp.WaitReady(out+`[data-ok]`, chromedp.ByQuery),
		chromedp.AttributeValue(out, "data-ok", &ok, &present, chromedp.ByQuery),
		chromedp.Text(out, &text, chromedp.ByQuery),
	)
	run(t, ctx, "submit "+form, actions...)
	return ok, text
}

// clearField empties an input, as a user selecting all and deleting
// would. (chromedp.Clear leaves a typed value in place, and SetValue
// refuses the empty string.)
func clearField(sel string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`(el => { el.value = ''; return true })(document.querySelector(%q))`, sel), nil)
}

// makeKey has the browser make a key for actor id on /courier, and
// returns the verifier key the page shows to enroll.
func makeKey(t *testing.T, ctx context.Context, e *env, id string) string {
	t.Helper()
	var vkey string
	run(t, ctx, "make the key of "+id,
		chromedp.Navigate(e.srv.URL+"/courier"),
		chromedp.WaitVisible(`[data-testid=enroll-form] [name=id]`, chromedp.ByQuery),
		chromedp.SendKeys(`[data-testid=enroll-form] [name=id]`, id, chromedp.ByQuery),
		chromedp.Click(`[data-testid=enroll-form] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=enroll-key][data-ok=true]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid=enroll-key]`, &vkey, chromedp.ByQuery),
	)
	return strings.TrimSpace(vkey)
}

// TestE2ECourier is a courier's phone: a fresh profile makes its key on
// /courier, the operator enrolls it, the courier scans the label of an
// item handed off to it (a photo, through the upload fallback), accepts
// it, and hands it on to the boutique. Both events are signed by the
// phone's key and the log grows by exactly two.
func TestE2ECourier(t *testing.T) {
	e := newEnv(t, true)
	cast(e)
	const phoneID = "courier-wang-lei"
	ctx := newPhone(t)

	// The phone makes its key and shows the verifier key to enroll.
	vkey := makeKey(t, ctx, e, phoneID)
	phoneKey, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("enroll-key %q is not a verifier key: %v", vkey, err)
	}
	if phoneKey.Name() != phoneID {
		t.Fatalf("enroll-key is named %q, want %q", phoneKey.Name(), phoneID)
	}

	// The operator enrolls it, as `prov enroll` would; the workshop hands
	// a new item to the phone.
	e.ok(e.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: phoneID, Role: provenance.RoleCourier, Name: "Wang Lei", Key: vkey}}, e.node.Operator))
	id := newItem(e)
	e.ok(e.handoffLeaf(makerID, id, provenance.Handoff{To: phoneID}))
	before := e.checkpointSize()

	// A photo of the label: the PNG the server makes for it.
	resp, png := e.get("/qr" + id.DigitalLink("") + ".png")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET QR PNG: %d %s", resp.StatusCode, png)
	}
	photo := filepath.Join(t.TempDir(), "label.png")
	if err := os.WriteFile(photo, png, 0o644); err != nil {
		t.Fatal(err)
	}
	var loc, pending string
	run(t, ctx, "scan the label through the upload fallback",
		chromedp.SetUploadFiles(`[data-testid=scan-upload]`, []string{photo}, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=item-panel]`, chromedp.ByQuery),
		chromedp.Location(&loc),
		chromedp.Text(`[data-testid=pending]`, &pending, chromedp.ByQuery),
	)
	if want := "/courier?item=" + strings.ReplaceAll(id.DigitalLink(""), "/", "%2F"); !strings.HasPrefix(loc, e.srv.URL+want) {
		t.Errorf("after the scan the page is %s, want %s%s", loc, e.srv.URL, want)
	}
	if pending != "Wang Lei" {
		t.Errorf("pending = %q, want the phone's courier, Wang Lei", pending)
	}

	ok, text := formResult(t, ctx, "receive-form", map[string]string{"place": "Shenzhen"})
	if ok != "true" {
		t.Fatalf("receive: data-ok = %q: %s", ok, text)
	}
	var custodian string
	run(t, ctx, "reload the item",
		chromedp.Reload(),
		chromedp.WaitVisible(`[data-testid=item-panel]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid=custodian]`, &custodian, chromedp.ByQuery),
	)
	if custodian != "Wang Lei" {
		t.Errorf("after receive the custodian shown is %q, want Wang Lei", custodian)
	}
	ok, text = formResult(t, ctx, "handoff-form", map[string]string{"to": resellerID, "place": "Shenzhen"})
	if ok != "true" {
		t.Fatalf("handoff: data-ok = %q: %s", ok, text)
	}

	// In Go: two events more, both signed by the phone's key.
	if after := e.checkpointSize(); after != before+2 {
		t.Errorf("the log grew from %d to %d entries, want exactly 2 more", before, after)
	}
	v, err := e.node.Service.Item(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	st := v.State
	if st.Custodian != phoneID || st.Status != provenance.StatusInTransit || st.Pending == nil || st.Pending.To != resellerID {
		t.Errorf("item state: custodian %q, status %q, pending %+v; want %s holding it, in transit to %s",
			st.Custodian, st.Status, st.Pending, phoneID, resellerID)
	}
	leaves := map[uint64][]byte{}
	for _, en := range v.Entries {
		leaves[en.Index] = en.Leaf
	}
	if n := len(v.Events); n < 2 {
		t.Fatalf("item has %d events", n)
	}
	for i, want := range []provenance.Kind{provenance.KindReceive, provenance.KindHandoff} {
		he := v.Events[len(v.Events)-2+i]
		if he.Index < before {
			t.Errorf("event %d (%s) is older than the phone's session", he.Index, he.Event.Kind)
		}
		ev, err := provenance.VerifyEvent(leaves[he.Index], phoneKey)
		if err != nil {
			t.Errorf("event %d does not verify against the phone's key: %v", he.Index, err)
			continue
		}
		if ev.Kind != want || ev.Actor != phoneID || ev.Place != "Shenzhen" {
			t.Errorf("event %d: %s by %s at %q, want %s by %s at Shenzhen", he.Index, ev.Kind, ev.Actor, ev.Place, want, phoneID)
		}
	}
	bundle, err := e.node.Service.Bundle(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provenance.VerifyBundle(bundle, e.node.Service.Trust()); err != nil {
		t.Errorf("the item's bundle does not verify: %v", err)
	}

	// The history page verifies on the phone, WebCrypto signatures and all:
	// register, handoff, and the phone's receive and handoff.
	run(t, ctx, "open the history page", chromedp.Navigate(pageURL(e.srv, id)))
	if verified, text := verifyOnPhone(t, ctx); verified != "true" || !strings.Contains(text, "4 events") {
		t.Errorf("verify on the courier's phone: data-verified = %q, %q; want true, 4 events", verified, text)
	}

	// The boutique can take it: the phone's handoff is a real offer.
	e.signNow()
	e.ok(e.receiveLeaf(resellerID, id, "Hong Kong"))
	if v, err := e.node.Service.Item(t.Context(), id); err != nil || v.State.Custodian != resellerID {
		t.Errorf("after the boutique's receive: custodian %q, %v", v.State.Custodian, err)
	}
}

// TestE2EBuyerClaim is the buyer: the boutique hands the item off by claim
// code; on the history page a wrong code is refused and logs nothing, the
// right one is accepted, and the page then says delivered.
func TestE2EBuyerClaim(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	code, h, err := provenance.NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e.ok(e.handoffLeaf(resellerID, id, h))
	wrong, _, err := provenance.NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	before := e.checkpointSize()
	ctx := newPhone(t)
	run(t, ctx, "open the history page",
		chromedp.Navigate(pageURL(e.srv, id)),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
	)

	ok, text := formResult(t, ctx, "claim-form", map[string]string{"claim": wrong})
	t.Logf("wrong code: %s", text)
	if ok != "false" || !strings.Contains(text, "Refused") || !strings.Contains(text, "claim code") {
		t.Errorf("wrong claim code: data-ok = %q, text %q; want a refusal that names the claim code", ok, text)
	}
	if after := e.checkpointSize(); after != before {
		t.Errorf("a wrong claim code grew the log from %d to %d", before, after)
	}

	ok, text = formResult(t, ctx, "claim-form", map[string]string{"claim": code})
	t.Logf("right code: %s", text)
	if ok != "true" || !strings.Contains(text, "Accepted") {
		t.Fatalf("claim code: data-ok = %q, text %q; want accepted", ok, text)
	}
	var kind, word string
	var present bool
	run(t, ctx, "reload the history page",
		chromedp.Reload(),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
		chromedp.AttributeValue(`[data-testid=verdict]`, "data-verdict", &kind, &present, chromedp.ByQuery),
		chromedp.Text(`[data-testid=verdict] .verdict-word`, &word, chromedp.ByQuery),
	)
	if kind != "delivered" || !strings.Contains(strings.ToLower(word), "delivered") {
		t.Errorf("after the claim the verdict is %q (%q), want delivered", kind, word)
	}
	// The buyer's receive, signed by a one-off key made on this phone,
	// verifies on the phone.
	if verified, text := verifyOnPhone(t, ctx); verified != "true" || !strings.Contains(text, fmt.Sprintf("%d events", chainEvents+2)) ||
		!strings.Contains(text, "delivered") {
		t.Errorf("verify after delivery: data-verified = %q, %q; want true, %d events, delivered", verified, text, chainEvents+2)
	}
	v, err := e.node.Service.Item(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if v.State.Status != provenance.StatusDelivered || v.State.Custodian != provenance.BuyerID {
		t.Errorf("item: status %q, custodian %q; want delivered to the buyer", v.State.Status, v.State.Custodian)
	}
	if after := e.checkpointSize(); after != before+1 {
		t.Errorf("the log grew from %d to %d, want one receive", before, after)
	}
}

// TestE2ENoJavaScript loads the history page with JavaScript off: the
// verdict, the timeline and every event's proof are there, server-rendered.
func TestE2ENoJavaScript(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	ctx := newPhone(t)
	var word, checkpoint, verifyOut string
	var events, hashes int
	run(t, ctx, "open the history page without JavaScript",
		emulation.SetScriptExecutionDisabled(true),
		chromedp.Navigate(pageURL(e.srv, id)),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid=verdict] .verdict-word`, &word, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('[data-testid=event]').length`, &events),
		chromedp.Evaluate(`[...document.querySelectorAll('[data-testid=event]')].filter(ev =>
			ev.querySelector('[data-testid=leaf-hash]').textContent.trim().length === 44 &&
			ev.querySelectorAll('.proof ol.hashes li').length > 0).length`, &hashes),
		chromedp.TextContent(`[data-testid=checkpoint]`, &checkpoint, chromedp.ByQuery),
		chromedp.TextContent(`[data-testid=verify-result]`, &verifyOut, chromedp.ByQuery),
	)
	if word != "Genuine" {
		t.Errorf("verdict = %q, want Genuine", word)
	}
	if events != chainEvents || hashes != chainEvents {
		t.Errorf("timeline: %d events, %d with a leaf hash and an inclusion proof; want %d", events, hashes, chainEvents)
	}
	if !strings.HasPrefix(checkpoint, "id.example.com/log\n") || !strings.Contains(checkpoint, "\n— id.example.com/log ") {
		t.Errorf("checkpoint = %q, want the signed note", checkpoint)
	}
	if verifyOut != "" {
		t.Errorf("verify-result = %q with JavaScript off", verifyOut)
	}
}

// TestE2EScreenshot writes docs/phone.png, the first screen of a genuine
// item's history page on a phone, when PROVTRAIL_SCREENSHOT=1 (see
// docs/screenshot.md).
func TestE2EScreenshot(t *testing.T) {
	if os.Getenv("PROVTRAIL_SCREENSHOT") != "1" {
		t.Skip("set PROVTRAIL_SCREENSHOT=1 to refresh docs/phone.png")
	}
	e := newEnv(t, true)
	id := seedChain(e)
	ctx := newPhone(t)
	var png []byte
	run(t, ctx, "screenshot the history page",
		chromedp.Navigate(pageURL(e.srv, id)),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.fonts.ready.then(() => true)`, nil, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
			return p.WithAwaitPromise(true)
		}),
		chromedp.CaptureScreenshot(&png),
	)
	path := filepath.Join("..", "docs", "phone.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(png))
}

// TestE2EVerifyOnPhoneChinese checks that a buyer reading the page in
// Chinese also reads the outcome of "Verify on this phone" in Chinese.
func TestE2EVerifyOnPhoneChinese(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	ctx := newPhone(t)
	run(t, ctx, "open the history page in Chinese",
		chromedp.Navigate(pageURL(e.srv, id)+"?lang=zh"),
		chromedp.WaitVisible(`[data-testid=verdict]`, chromedp.ByQuery),
	)
	verified, text := verifyOnPhone(t, ctx)
	if verified != "true" || !strings.Contains(text, "已在本机验证") || !strings.Contains(text, fmt.Sprintf("%d 个事件", chainEvents)) {
		t.Fatalf("verify-result = %q (verified %q), want the Chinese sentence", text, verified)
	}
}

// TestE2EManufacturerBatch registers 150 items from the manufacturer page
// in a real browser, against the real server: the page signs them with
// its key and sends them in batches (POST /api/v1/events/batch), and the
// log grows by exactly 150 register events by that key.
func TestE2EManufacturerBatch(t *testing.T) {
	e := newEnv(t, true)
	const deskID = "acme-desk"
	ctx := newPhone(t)
	vkey := makeKey(t, ctx, e, deskID)
	e.ok(e.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: deskID, Role: provenance.RoleManufacturer, Name: "Acme desk", Key: vkey}}, e.node.Operator))
	before := e.checkpointSize()

	run(t, ctx, "open the manufacturer page", chromedp.Navigate(e.srv.URL+"/manufacturer"))
	ok, text := formResult(t, ctx, "register-form", map[string]string{"gtin": "9506000134352", "product": "Desk lamp", "count": "150"})
	if ok != "true" || !strings.HasPrefix(text, "Registered 150 of 150 items") {
		t.Fatalf("register 150: data-ok %q: %s", ok, text)
	}
	after := e.checkpointSize()
	if after != before+150 {
		t.Fatalf("log grew from %d to %d, want by 150", before, after)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := e.node.Log.Leaves(t.Context(), before, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range leaves {
		if ev, err := provenance.VerifyEvent(leaf, v); err != nil || ev.Kind != provenance.KindRegister || ev.Register.Product != "Desk lamp" {
			t.Fatalf("logged %s: %v", leaf, err)
		}
	}
	if got := e.metric(`provtrail_http_requests_total{method="POST",route="/api/v1/events/batch",status="200"}`); got != "2" {
		t.Errorf("batch requests counted %q, want 2 (100 and 50 items)", got)
	}
}
