package web_test

import (
	"bytes"
	"image"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/provtrail/provtrail/provenance"
)

// labelSigs returns the manufacturer's label signature of id, and one by
// another enrolled actor's key (a copycat's).
func labelSigs(t *testing.T, e *env, id provenance.ItemID) (good, other string) {
	t.Helper()
	good, err := provenance.SignLabel(id, e.keys[makerID])
	if err != nil {
		t.Fatal(err)
	}
	other, err = provenance.SignLabel(id, e.keys[courierID])
	if err != nil {
		t.Fatal(err)
	}
	return good, other
}

// TestQRLabel encodes a verified label signature in the QR code, and
// refuses a bad one with 400.
func TestQRLabel(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	good, other := labelSigs(t, e, id)
	base := "/qr" + id.DigitalLink("")

	resp, body := e.get(base + ".png?8030=" + good)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// The image is the server's, not a photo: PURE_BARCODE reads it as
	// such. Without it gozxing's finder-pattern search missed about 1.5%
	// of these random labels (22 of 1,500 runs), which made CI flaky.
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]interface{}{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.GetText(), id.DigitalLink(baseURL)+"?8030="+good; got != want {
		t.Errorf("QR says %q, want %q", got, want)
	}
	if resp, body := e.get(base + ".svg?8030=" + good); resp.StatusCode != http.StatusOK || !bytes.HasPrefix(body, []byte("<svg")) {
		t.Errorf("svg: %d", resp.StatusCode)
	}

	other2 := mustItem(t, e2eGTIN, "OTHER-ITEM")
	wrongItem, _ := provenance.SignLabel(other2, e.keys[makerID])
	for _, tc := range []struct {
		name, query string
		status      int
		want        string
	}{
		{"other-signer", "?8030=" + other, 400, "does not verify against the enrolled key of " + makerID},
		{"other-item", "?8030=" + wrongItem, 400, "does not verify"},
		{"malformed", "?8030=abc", 400, "3 characters, want 86"},
		{"twice", "?8030=" + good + "&8030=" + good, 400, "2 values of 8030"},
	} {
		resp, body := e.get(base + ".png" + tc.query)
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want %d saying %q", tc.name, resp.StatusCode, body, tc.status, tc.want)
		}
	}
	if resp, _ := e.get("/qr/01/" + e2eGTIN + "/21/NOSUCH.png?8030=" + good); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unregistered item with a label: %d, want 404", resp.StatusCode)
	}
}

// TestHistoryLabel opens the history page with a good, a foreign and a
// malformed ?8030=.
func TestHistoryLabel(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	good, other := labelSigs(t, e, id)
	page := id.DigitalLink("")

	resp, body := e.get(page + "?8030=" + good)
	d := doc(t, body)
	if resp.StatusCode != http.StatusOK || d.Find("[data-testid=label-check]").AttrOr("data-ok", "") != "true" {
		t.Fatalf("good label: %d, data-ok %q", resp.StatusCode, d.Find("[data-testid=label-check]").AttrOr("data-ok", ""))
	}
	if got := d.Find("[data-testid=label-verdict]").Text(); got != "Label signed by Lin Leatherworks, Guangzhou (checked)" {
		t.Errorf("good label says %q", got)
	}
	if d.Find("[data-testid=verdict]").Length() != 1 || d.Find("[data-testid=event]").Length() != chainEvents {
		t.Error("the page with a label does not show the verdict and the history")
	}
	if d.Find(`script[src="/assets/verifypage.js"]`).Length() != 1 {
		t.Error("the page does not load the label re-check")
	}

	for _, tc := range []struct {
		name, query string
		status      int
		reason      string
	}{
		{"other-signer", "?8030=" + other, 200, "not " + makerID + "'s signature"},
		{"malformed", "?8030=not-a-signature", 400, "malformed"},
		{"twice", "?8030=" + good + "&8030=" + good, 400, "2 values"},
	} {
		resp, body := e.get(page + tc.query)
		d := doc(t, body)
		if resp.StatusCode != tc.status || d.Find("[data-testid=label-check]").AttrOr("data-ok", "") != "false" {
			t.Errorf("%s: %d, data-ok %q", tc.name, resp.StatusCode, d.Find("[data-testid=label-check]").AttrOr("data-ok", ""))
		}
		if got := d.Find("[data-testid=label-verdict]").Text(); got != "Label signature does not match: this label may be a copy" {
			t.Errorf("%s: label says %q", tc.name, got)
		}
		if got := d.Find("[data-testid=label-reason]").Text(); !strings.Contains(got, tc.reason) {
			t.Errorf("%s: reason %q, want %q", tc.name, got, tc.reason)
		}
	}
	// In Chinese.
	_, body = e.get(page + "?8030=" + good + "&lang=zh")
	if got := doc(t, body).Find("[data-testid=label-verdict]").Text(); !strings.Contains(got, "已校验") {
		t.Errorf("zh: %q", got)
	}
	// Without ?8030= the page has no label check.
	_, body = e.get(page)
	if doc(t, body).Find("[data-testid=label-check]").Length() != 0 {
		t.Error("a label check without ?8030=")
	}
}

// TestE2ELabelRecheck: the phone re-checks the label signature itself.
func TestE2ELabelRecheck(t *testing.T) {
	e := newEnv(t, true)
	id := seedChain(e)
	good, other := labelSigs(t, e, id)
	ctx := newPhone(t)
	for _, tc := range []struct {
		sig, want string
	}{{good, "true"}, {other, "false"}} {
		var verified string
		run(t, ctx, "open the page with a label",
			chromedp.Navigate(pageURL(e.srv, id)+"?8030="+tc.sig),
			chromedp.WaitReady(`[data-testid=label-recheck][data-verified]`, chromedp.ByQuery),
			chromedp.AttributeValue(`[data-testid=label-recheck]`, "data-verified", &verified, nil, chromedp.ByQuery),
		)
		if verified != tc.want {
			t.Errorf("re-check of %.10s...: data-verified %q, want %q", tc.sig, verified, tc.want)
		}
	}
}
