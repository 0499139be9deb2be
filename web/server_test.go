package web_test

import (
	"bytes"
	"encoding/json"
	"image"
	_ "image/png"
	"net/http"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
)

const gtin = "09506000134352"

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, false)
	for _, path := range []string{"/courier", "/api/v1/nope", "/checkpoint", "/01/" + gtin + "/21/NOPE", "/assets/style.css"} {
		resp, _ := e.get(path)
		h := resp.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("%s sets a cookie", path)
		}
	}
}

func TestResolverBadCodes(t *testing.T) {
	e := newEnv(t, false)
	for _, tc := range []struct{ name, path, reason string }{
		{"check digit", "/01/09506000134353/21/ABC", "check digit is 3, expected 2"},
		{"gtin length", "/01/0950600013435/21/ABC", "check digit"},
		{"gtin short", "/01/123/21/ABC", "GTIN has 3 digits, want 8, 12, 13 or 14"},
		{"serial too long", "/01/" + gtin + "/21/ABCDEFGHIJKLMNOPQRSTU", "serial has 21 characters, at most 20"},
		{"bad character", "/01/" + gtin + "/21/a%23b", "character '#' not allowed in serial"},
		{"non-ascii", "/01/" + gtin + "/21/%C3%A9", "character 'é' not allowed in serial"},
		{"encoded slash in gtin", "/01/0950600013435%2F2/21/ABC", "GTIN has 17 digits"},
		{"traversal", "/01/" + gtin + "/21/../../etc/passwd", `path does not end in "/01/{gtin}/21/{serial}"`},
		{"prefix", "/01/x/01/" + gtin + "/21/ABC", `path is not exactly "/01/{gtin}/21/{serial}"`},
		{"no serial", "/01/" + gtin, `path does not end in`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.get(tc.path)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400\n%s", resp.StatusCode, body)
			}
			d := doc(t, body)
			v := d.Find(`[data-testid="verdict"]`)
			if k, _ := v.Attr("data-verdict"); k != "invalid" {
				t.Errorf("verdict %q", k)
			}
			if !strings.Contains(v.Text(), tc.reason) {
				t.Errorf("verdict %q does not say %q", v.Text(), tc.reason)
			}
		})
	}
}

func TestResolverUnregistered(t *testing.T) {
	e := newEnv(t, false)
	resp, body := e.get("/01/"+gtin+"/21/NOSUCH", "Accept", "text/html")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
	v := doc(t, body).Find(`[data-testid="verdict"]`)
	if k, _ := v.Attr("data-verdict"); k != "unregistered" {
		t.Errorf("verdict %q", k)
	}
	if txt := v.Text(); !strings.Contains(txt, "not registered") || !strings.Contains(txt, "counterfeit") {
		t.Errorf("verdict text %q", txt)
	}
	// In Chinese too.
	_, body = e.get("/01/"+gtin+"/21/NOSUCH", "Accept-Language", "zh-CN,zh;q=0.9,en;q=0.5")
	if txt := doc(t, body).Find(`[data-testid="verdict"]`).Text(); !strings.Contains(txt, "未登记") {
		t.Errorf("zh verdict %q", txt)
	}
}

func TestHistoryPage(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, `A<b>"x"`)
	evil := `<script>alert("product")</script>`
	e.enroll("maker", provenance.RoleManufacturer, `<script>alert("name")</script>`)
	e.enroll("courier", provenance.RoleCourier, "Fast Courier")
	e.ok(e.registerLeaf("maker", id, evil, `<img src=x onerror=alert(1)>`))
	e.ok(e.handoffLeaf("maker", id, provenance.Handoff{To: "courier"}))

	path := id.DigitalLink("")
	resp, body := e.get(path)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("status %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if bytes.Contains(body, []byte("<script>alert")) || bytes.Contains(body, []byte("<img src=x")) || bytes.Contains(body, []byte(`A<b>`)) {
		t.Fatalf("user text not escaped:\n%s", body)
	}
	d := doc(t, body)
	v := d.Find(`[data-testid="verdict"]`)
	if k, _ := v.Attr("data-verdict"); k != "genuine" || !strings.Contains(v.Text(), "in transit to Fast Courier") {
		t.Errorf("verdict %q: %q", k, v.Text())
	}
	if got := d.Find(`[data-testid="product"]`).Text(); got != evil {
		t.Errorf("product %q", got)
	}
	if n := d.Find(`[data-testid="event"]`).Length(); n != 2 {
		t.Errorf("%d event rows, want 2", n)
	}
	if got := d.Find(`[data-testid="scans"]`).Text(); got != "1" {
		t.Errorf("scans %q", got)
	}
	if !strings.Contains(d.Find(`[data-testid="manufacturer"]`).Text(), "Verified by the operator") {
		t.Errorf("manufacturer badge missing")
	}
	ver := d.Find(`[data-testid="verify"]`)
	trust := e.node.Service.Trust()
	for attr, want := range map[string]string{
		"data-bundle-url":   "/api/v1/items/" + gtin + "/A%3Cb%3E%22x%22/bundle",
		"data-origin":       trust.Origin,
		"data-log-key":      trust.LogKey,
		"data-operator-key": trust.OperatorKey,
	} {
		if got, _ := ver.Attr(attr); got != want {
			t.Errorf("%s = %q, want %q", attr, got, want)
		}
	}
	if ver.Find(`[data-testid="verify-button"]`).Length() != 1 || ver.Find(`[data-testid="verify-result"]`).Length() != 1 {
		t.Error("verify button or result missing")
	}
	if dl, ok := d.Find(`[data-testid="download-bundle"]`).Attr("download"); !ok {
		t.Errorf("download attribute missing (%q)", dl)
	}
	bundleURL, _ := d.Find(`[data-testid="download-bundle"]`).Attr("href")
	if href, _ := d.Find(`[data-testid="verify-page"]`).Attr("href"); href != "/verify?bundle="+bundleURL {
		t.Errorf("offline verifier link %q, want /verify?bundle=%s", href, bundleURL)
	}
	if d.Find(`script[src="/assets/verify.js"][defer]`).Length() != 1 {
		t.Error("verify.js not loaded")
	}
	if d.Find(`script:not([src])`).Length() != 0 || d.Find(`[style]`).Length() != 0 {
		t.Error("inline script or style")
	}
	if d.Find(`[data-testid="dispute-form"]`).Length() != 1 {
		t.Error("no dispute form")
	}
	// The second view counts a second scan.
	_, body = e.get(path)
	if got := doc(t, body).Find(`[data-testid="scans"]`).Text(); got != "2" {
		t.Errorf("scans %q after two views", got)
	}

	// Receive, then hand off to a buyer by claim code: the claim form shows.
	e.ok(e.receiveLeaf("courier", id, "Hong Kong"))
	code, h, err := provenance.NewClaim(randReader{})
	if err != nil {
		t.Fatal(err)
	}
	e.ok(e.handoffLeaf("courier", id, h))
	_, body = e.get(path + "?lang=zh")
	d = doc(t, body)
	if d.Find(`[data-testid="claim-form"] input[name="claim"]`).Length() != 1 {
		t.Error("no claim form while a claim is pending")
	}
	if txt := d.Find(`[data-testid="verdict"]`).Text(); !strings.Contains(txt, "正品") {
		t.Errorf("zh verdict %q", txt)
	}
	if href, _ := d.Find(`[data-testid="lang-switch"]`).Attr("href"); href != path+"?lang=en" {
		t.Errorf("language switch %q", href)
	}

	// The buyer receives: delivered.
	buyer, buyerKey := newSigner(t, provenance.BuyerID)
	e.ok(e.sign(provenance.Event{Kind: provenance.KindReceive, Actor: provenance.BuyerID, Item: id, Prev: e.last(id),
		Receive: &provenance.Receive{ClaimCode: code, BuyerKey: buyerKey}}, buyer))
	_, body = e.get(path)
	v = doc(t, body).Find(`[data-testid="verdict"]`)
	if k, _ := v.Attr("data-verdict"); k != "delivered" || !strings.Contains(v.Text(), "it may be a copy") {
		t.Errorf("verdict %q: %q", k, v.Text())
	}
}

// randReader is a deterministic stand-in for crypto/rand in tests.
type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	return len(p), nil
}

func TestResolverNegotiation(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "NEG1")
	scenario(e, id, "Bag")
	path := id.DigitalLink("")

	for _, tc := range []struct{ name, query, accept, ctype string }{
		{"linkType traceability", "?linkType=gs1:traceability", "", "application/ld+json"},
		{"accept ld+json", "", "application/ld+json", "application/ld+json"},
		{"linkset", "?linkType=all", "", "application/linkset+json"},
		{"accept linkset", "", "application/linkset+json", "application/linkset+json"},
		{"browser", "", "text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.accept != "" {
				hdr = []string{"Accept", tc.accept}
			}
			resp, body := e.get(path+tc.query, hdr...)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != tc.ctype {
				t.Fatalf("%d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			switch tc.ctype {
			case "application/ld+json":
				var d provenance.EPCISDocument
				if err := json.Unmarshal(body, &d); err != nil || len(d.Body.EventList) != 3 {
					t.Fatalf("EPCIS %v: %s", err, body)
				}
				if d.Body.EventList[0].EPCList[0] != id.DigitalLink(baseURL) || d.Body.EventList[0].BizStep != "commissioning" {
					t.Errorf("first event %+v", d.Body.EventList[0])
				}
			case "application/linkset+json":
				var ls struct {
					Linkset []map[string]json.RawMessage `json:"linkset"`
				}
				if err := json.Unmarshal(body, &ls); err != nil || len(ls.Linkset) != 1 {
					t.Fatalf("linkset %v: %s", err, body)
				}
				for _, k := range []string{"anchor", "https://gs1.org/voc/pip", "https://gs1.org/voc/traceability", baseURL + "/ns/linktypes#proofBundle", baseURL + "/ns/linktypes#qrCode"} {
					if _, ok := ls.Linkset[0][k]; !ok {
						t.Errorf("linkset lacks %s", k)
					}
				}
			}
		})
	}

	// A GTIN-13 and an over-encoded serial redirect to the canonical URI.
	for _, nc := range []string{"/01/9506000134352/21/NEG1?linkType=all", "/01/" + gtin + "/21/%4EEG1?linkType=all"} {
		resp, _ := e.get(nc)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != path+"?linkType=all" {
			t.Errorf("%s: %d Location %q", nc, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestPostEventErrors(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "ERR1")
	scenario(e, id, "Bag")
	e.enroll("other", provenance.RoleCourier, "Other Courier")
	stale := e.handoffLeaf("courier", id, provenance.Handoff{To: "other"}) // prev is the current latest
	e.ok(stale)
	e.ok(e.receiveLeaf("other", id, "Macau"))

	wrongKey, _ := newSigner(t, "other")
	unsigned := "provtrail-event/v1\n{\"kind\":\"handoff\"}\n"
	for _, tc := range []struct {
		name   string
		body   []byte
		ctype  string
		status int
		code   string
	}{
		{"garbage", []byte("hello"), "text/plain", 400, "malformed_event"},
		{"empty", nil, "text/plain", 400, "malformed_event"},
		{"unsigned note", []byte(unsigned), "text/plain", 400, "malformed_event"},
		{"wrong key", e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "other", Item: id, Prev: e.last(id),
			Handoff: &provenance.Handoff{To: "courier"}}, wrongKey), "text/plain", 400, "bad_signature"},
		{"not custodian", e.handoffLeaf("courier", id, provenance.Handoff{To: "maker"}), "text/plain", 403, "not_custodian"},
		{"replay of an old event", e.receiveLeaf("courier", id, "x"), "text/plain", 409, "no_handoff"},
		{"stale prev", e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "other", Item: id, Prev: merkle.LeafHash(stale),
			Handoff: &provenance.Handoff{To: "courier"}}, e.keys["other"]), "text/plain", 409, "stale_prev"},
		{"unknown item", e.registerLeafNoSubmit(), "text/plain", 403, "wrong_role"},
		{"oversize", bytes.Repeat([]byte("a"), 64<<10+1), "text/plain", 413, "too_large"},
		{"form post", []byte("item=x"), "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.checkpointSize()
			resp, err := http.Post(e.srv.URL+"/api/v1/events", tc.ctype, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ae apiErr
			if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || ae.Error.Code != tc.code || ae.Error.Message == "" {
				t.Errorf("%d %+v, want %d %s", resp.StatusCode, ae, tc.status, tc.code)
			}
			if after := e.checkpointSize(); after != before {
				t.Errorf("log grew from %d to %d", before, after)
			}
		})
	}

	// A retry of the latest event is a duplicate: 200, same index.
	leaf := e.handoffLeaf("other", id, provenance.Handoff{To: "courier"})
	first := e.ok(leaf)
	status, body := e.post(leaf)
	var again receipt
	if err := json.Unmarshal(body, &again); err != nil || status != http.StatusOK || !again.Duplicate || again.Index != first.Index {
		t.Errorf("retry: %d %s", status, body)
	}
	if !strings.Contains(first.Proof, "c2sp.org/tlog-proof@v1") || !strings.HasPrefix(first.Checkpoint, "id.example.com/log\n") {
		t.Errorf("receipt %+v", first)
	}
}

// registerLeafNoSubmit is a register by a courier: a role that may not
// register.
func (e *env) registerLeafNoSubmit() []byte {
	return e.registerLeaf("courier", mustItem(e.t, gtin, "NEW"), "x", "")
}

func TestQR(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "QR/1")
	scenario(e, id, "Bag")
	base := "/qr/01/" + gtin + "/21/QR%2F1"

	resp, body := e.get(base + ".png")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := res.GetText(), baseURL+"/01/"+gtin+"/21/QR%2F1"; got != want {
		t.Errorf("QR says %q, want %q", got, want)
	}

	resp, body = e.get(base + ".svg")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" ||
		!bytes.Contains(body, []byte(`shape-rendering="crispEdges"`)) || bytes.Count(body, []byte("<path")) != 1 {
		t.Fatalf("%d %v\n%s", resp.StatusCode, resp.Header, body)
	}

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/qr/01/" + gtin + "/21/NOSUCH.png", 404},
		{"/qr/01/09506000134353/21/A.png", 400},
		{"/qr/01/" + gtin + "/21/A.gif", 400},
		{"/qr/01/" + gtin + "/21/a%23b.svg", 400},
	} {
		if resp, body := e.get(tc.path); resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d\n%s", tc.path, resp.StatusCode, tc.status, body)
		}
	}
}
