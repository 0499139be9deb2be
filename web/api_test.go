package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

func TestItemAPI(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "API/1")
	scenario(e, id, "Bag")
	trust := e.node.Service.Trust()

	resp, body := e.get("/api/v1/items/" + gtin + "/API%2F1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var h struct {
		Item       string `json:"item"`
		Status     string `json:"status"`
		Custodian  string `json:"custodian"`
		Checkpoint string `json:"checkpoint"`
		Events     []struct {
			Index    uint64 `json:"index"`
			LeafHash string `json:"leaf_hash"`
			Actor    string `json:"actor"`
			Role     string `json:"role"`
			Kind     string `json:"kind"`
			Time     string `json:"time"`
			Place    string `json:"place"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatal(err)
	}
	if h.Item != id.String() || h.Status != "in custody" || h.Custodian != "courier" || len(h.Events) != 3 ||
		h.Events[2].Kind != "receive" || h.Events[2].Role != "courier" || h.Events[0].Place != "Shenzhen" || h.Checkpoint == "" {
		t.Errorf("history %+v", h)
	}

	resp, body = e.get("/api/v1/items/" + gtin + "/API%2F1/bundle")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename=item-`+gtin+`-API_1.provtrail-bundle.json` {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	hist, err := provenance.VerifyBundle(body, trust)
	if err != nil || len(hist.Events) != 3 {
		t.Fatalf("bundle does not verify: %v", err)
	}

	resp, body = e.get("/api/v1/items/" + gtin + "/API%2F1/epcis")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ld+json" || !strings.Contains(string(body), "EPCISDocument") {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}

	resp, body = e.get("/api/v1/actors/maker")
	var a struct {
		ID, Role, Name, Key string
		Keys                []struct{ From uint64 }
	}
	if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != 200 || a.ID != "maker" || a.Role != "manufacturer" || len(a.Keys) != 1 {
		t.Errorf("actor %d %s", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/v1/items/" + gtin + "/NOSUCH", 404, "not_found"},
		{"/api/v1/items/" + gtin + "/NOSUCH/bundle", 404, "not_found"},
		{"/api/v1/items/" + gtin + "/NOSUCH/epcis", 404, "not_found"},
		{"/api/v1/items/09506000134353/A", 400, "bad_digital_link"},
		{"/api/v1/items/" + gtin + "/a%23b/bundle", 400, "bad_digital_link"},
		{"/api/v1/actors/nobody", 404, "not_found"},
		{"/api/v1/actors/Bad_Id", 400, "malformed_event"},
		{"/api/v1/nothing", 404, "not_found"},
	} {
		resp, body := e.get(tc.path)
		var ae apiErr
		if err := json.Unmarshal(body, &ae); err != nil || resp.StatusCode != tc.status || ae.Error.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.code)
		}
	}

	req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/api/v1/events", nil)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("PUT: %d %v", r.StatusCode, r.Header)
	}
}

func TestLogEndpoints(t *testing.T) {
	e := newEnv(t, false)
	scenario(e, mustItem(t, gtin, "LOG1"), "Bag")
	trust := e.node.Service.Trust()

	resp, body := e.get("/checkpoint")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "no-cache") || !strings.HasPrefix(string(body), trust.Origin+"\n5\n") {
		t.Errorf("checkpoint %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	resp, body = e.get("/keys")
	var k map[string]string
	if err := json.Unmarshal(body, &k); err != nil || k["origin"] != trust.Origin || k["log_key"] != trust.LogKey || k["operator_key"] != trust.OperatorKey {
		t.Errorf("keys %d %s", resp.StatusCode, body)
	}
	if resp, body := e.get("/healthz"); resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("healthz %d %q", resp.StatusCode, body)
	}
	e.get(mustItem(t, gtin, "LOG1").DigitalLink(""))
	_, body = e.get("/metrics")
	for _, want := range []string{
		`provtrail_events_submitted_total{outcome="accepted"} 5`,
		`provtrail_page_renders_total{page="history"} 1`,
		`provtrail_scans_total 1`,
		`provtrail_proofs_served_total{kind="receipt"} 5`,
		`provtrail_http_requests_total{method="POST",route="/api/v1/events",status="201"} 5`,
		`provtrail_http_request_duration_seconds_bucket{route="/01/*rest"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "PG1")
	scenario(e, id, `Bag <script>x</script>`)
	dl := id.DigitalLink(baseURL)

	for _, tc := range []struct {
		path, testid string
		status       int
	}{
		{"/courier", "scanner-video", 200},
		{"/courier", "scan-upload", 200},
		{"/courier", "enroll", 200},
		{"/courier?item=" + dl, "handoff-form", 200},
		{"/courier?item=" + dl, "item-panel", 200},
		{"/courier?item=/01/" + gtin + "/21/NOPE", "item-problem", 404},
		{"/courier?item=/01/123/21/A", "item-problem", 400},
		{"/manufacturer", "register-form", 200},
		{"/manufacturer", "labels-form", 200},
		{"/labels?item=" + dl, "label", 200},
		{"/labels", "labels-empty", 200},
		{"/labels?item=/01/" + gtin + "/21/NOPE", "verdict", 404},
		{"/labels?item=nonsense", "verdict", 400},
		{"/actors/maker", "verified", 200},
		{"/actors/nobody", "error", 404},
		{"/no/such/page", "error", 404},
	} {
		resp, body := e.get(tc.path)
		if resp.StatusCode != tc.status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		d := doc(t, body)
		if d.Find(`[data-testid="`+tc.testid+`"]`).Length() == 0 {
			t.Errorf("%s: no %s", tc.path, tc.testid)
		}
		if d.Find(`[data-testid="lang-switch"]`).Length() != 1 {
			t.Errorf("%s: no language switch", tc.path)
		}
		if strings.Contains(string(body), "<script>x") {
			t.Errorf("%s: unescaped", tc.path)
		}
	}
	_, body := e.get("/courier?lang=zh")
	if !strings.Contains(string(body), "签名需要 JavaScript") {
		t.Error("courier page in Chinese lacks the JavaScript notice")
	}
	_, body = e.get("/labels?item=" + dl)
	if src, _ := doc(t, body).Find(`[data-testid="label"] img`).Attr("src"); src != "/qr/01/"+gtin+"/21/PG1.svg" {
		t.Errorf("label QR %q", src)
	}
	// The maker's page lists what it signed, newest first, and its
	// enrollment last.
	_, body = e.get("/actors/maker")
	rows := doc(t, body).Find(`[data-testid="event"]`)
	if rows.Length() < 2 || !strings.Contains(rows.Last().Text(), "Enrolled by the operator") {
		t.Errorf("maker's page lists %d events, the last %q", rows.Length(), strings.Join(strings.Fields(rows.Last().Text()), " "))
	}
	if doc(t, body).Find(`[data-testid="no-listing"]`).Length() != 0 {
		t.Error("maker's page still says events cannot be listed")
	}
}

func TestAssets(t *testing.T) {
	e := newEnv(t, false)
	resp, body := e.get("/assets/style.css")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || len(body) == 0 || resp.Header.Get("ETag") == "" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := e.get("/assets/style.css", "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d", resp.StatusCode)
	}
	_, page := e.get("/courier")
	href, _ := doc(t, page).Find(`link[rel="stylesheet"]`).Attr("href")
	if resp, _ := e.get(href); resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("%s: %d %v", href, resp.StatusCode, resp.Header)
	}
	for _, p := range []string{"/assets/assets.go", "/assets/browser_test.go", "/assets/testdata/verify.html", "/assets/../go.mod"} {
		if resp, _ := e.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}
