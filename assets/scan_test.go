package assets

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"
	"github.com/skip2/go-qrcode"
)

// writeQR writes a QR code PNG of content, as a phone photo of a label
// would show it (with the quiet zone).
func writeQR(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "code.png")
	if err := qrcode.WriteFile(content, qrcode.Medium, 600, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// upload chooses the file for the scan-upload input, as a user would. It
// sets the files with one DevTools call, as chromedp.SetUploadFiles does,
// without its follow-up queries, which race with the navigation a
// successful scan starts.
func upload(path string) chromedp.Action {
	var nodes []*cdp.Node
	return chromedp.Tasks{
		chromedp.Nodes(`[data-testid=scan-upload]`, &nodes, chromedp.ByQuery),
		chromedp.ActionFunc(func(ctx context.Context) error {
			return dom.SetFileInputFiles([]string{path}).WithBackendNodeID(nodes[0].BackendNodeID).Do(ctx)
		}),
	}
}

// TestScanUpload feeds a photo of an item's QR code through the upload
// input (the last resort when there is no camera) and checks the page
// opens /courier for that item. Headless chromium has no BarcodeDetector,
// so this exercises the vendored jsQR decoder.
func TestScanUpload(t *testing.T) {
	srv := newServer(t, func(r *http.Request) any {
		return map[string]string{"Opened": r.URL.Query().Get("item")}
	}, func(mux *http.ServeMux) {
		mux.HandleFunc("/courier", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/t/courier?"+r.URL.RawQuery, http.StatusFound)
		})
	})
	ctx := newTab(t)

	t.Run("digital-link", func(t *testing.T) {
		png := writeQR(t, "https://id.example.com/01/09506000134352/21/A%2FB?8030=abc")
		var opened, href string
		err := chromedp.Run(ctx,
			chromedp.Navigate(srv.URL+"/t/courier?lang=zh"),
			upload(png),
			chromedp.WaitVisible(`[data-testid=opened]`, chromedp.ByQuery), // on the page navigated to
			chromedp.Text(`[data-testid=opened]`, &opened, chromedp.ByQuery),
			chromedp.Location(&href),
		)
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(href)
		if opened != "/01/09506000134352/21/A%2FB" || u.Query().Get("lang") != "zh" {
			t.Errorf("opened item %q (at %s), want /01/09506000134352/21/A%%2FB with lang=zh", opened, href)
		}
	})

	t.Run("not-a-product-code", func(t *testing.T) {
		png := writeQR(t, "WIFI:S:cafe;T:WPA;P:secret;;")
		var state, text, href string
		err := chromedp.Run(ctx,
			chromedp.Navigate(srv.URL+"/t/courier"),
			upload(png),
			chromedp.WaitVisible(`[data-testid=scan-result][data-state=not-item]`, chromedp.ByQuery),
			chromedp.AttributeValue(`[data-testid=scan-result]`, "data-state", &state, nil, chromedp.ByQuery),
			chromedp.Text(`[data-testid=scan-result]`, &text, chromedp.ByQuery),
			chromedp.Location(&href),
		)
		if err != nil {
			t.Fatal(err)
		}
		if text != "This QR code is not a product code: WIFI:S:cafe;T:WPA;P:secret;;" || href != srv.URL+"/t/courier" {
			t.Errorf("state %q, text %q, at %s", state, text, href)
		}
	})
}
