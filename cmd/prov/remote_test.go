package main

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
	"github.com/provtrail/provtrail/web/api"
)

// serve runs the web handler of provd on the world's data directory, which
// stays locked, so that prov can only reach it over HTTP.
func (w *world) serve() string {
	w.t.Helper()
	n, err := datadir.Open(w.t.Context(), datadir.Config{Dir: w.data})
	if err != nil {
		w.t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	h, err := web.New(web.Config{Service: n.Service, Log: n.Log, BaseURL: "http://" + srv.Listener.Addr().String()})
	if err != nil {
		w.t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	w.t.Cleanup(func() {
		srv.Close()
		n.Close()
	})
	return srv.URL
}

// TestServer drives every verb against a provd over HTTP, pinning its keys
// on first use.
func TestServer(t *testing.T) {
	w := newWorld(t)
	origin, logKey, opKey := w.trust()
	url := w.serve()
	srv := func(verb string, args ...string) result {
		t.Helper()
		return prov(t, append([]string{verb, "--server", url}, args...)...)
	}

	// Trust on first use, said plainly; a second run checks the pin.
	policy := w.path("keys.policy")
	r := srv("keys", "--out", policy).ok(t)
	if !strings.Contains(r.stdout, "Trust on first use") || !strings.Contains(r.stdout, logKey) {
		t.Errorf("keys --out does not say it trusts on first use:\n%s", r.stdout)
	}
	if got, err := provenance.ParseTrustPolicy(readFile(t, policy)); err != nil || got != (provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}) {
		t.Errorf("pinned %+v, %v", got, err)
	}
	if r := srv("keys", "--out", policy).ok(t); !strings.Contains(r.stdout, "match the ones pinned") {
		t.Errorf("second keys --out: %s", r.stdout)
	}
	wrong := w.path("wrong.policy")
	writeFile(t, wrong, []byte(provenance.FormatTrustPolicy(provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: newVKey(t, "operator")})))
	srv("keys", "--out", wrong).fails(t, exitFail, "NOT the ones pinned")

	// The operator signs locally and submits over HTTP.
	acme, acmeV := w.keygen("acme")
	courier, courierV := w.keygen("courier-x")
	opFile := w.data + "/operator.key"
	srv("enroll", "--id", "acme", "--role", "manufacturer", "--name", "Acme Ltd", "--key", acmeV).fails(t, exitUsage, "--operator-key FILE is needed with --server")
	srv("enroll", "--id", "acme", "--role", "manufacturer", "--name", "Acme Ltd", "--key", acmeV, "--operator-key", opFile).ok(t)
	srv("enroll", "--id", "courier-x", "--role", "courier", "--name", "Swift", "--key", courierV, "--operator-key", opFile).ok(t)
	r = srv("enroll", "--id", "courier-x", "--role", "courier", "--name", "Swift", "--key", courierV, "--operator-key", opFile).ok(t)
	if !strings.Contains(r.stdout, "was logged already") {
		t.Errorf("a repeated enroll: %s", r.stdout)
	}

	item := srv("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair", "--place", "Shenzhen").ok(t).line()
	srv("register", "--key", courier, "--gtin", testGTIN, "--product", "Fake").fails(t, exitFail, "only a manufacturer registers items")
	srv("handoff", "--key", courier, "--item", item, "--to", "acme").fails(t, exitFail, "refused: not the custodian")
	srv("handoff", "--key", acme, "--item", item, "--to", "courier-x").ok(t)
	srv("receive", "--key", courier, "--item", item, "--place", "Hong Kong").ok(t)
	code := srv("handoff", "--key", courier, "--item", item, "--claim").ok(t).line()
	srv("receive", "--item", item, "--claim-code", code, "--save-key", w.path("buyer.key")).ok(t)
	srv("receive", "--item", item, "--claim-code", code).fails(t, exitFail, "already delivered")
	srv("dispute", "--key", w.path("buyer.key"), "--item", item, "--reason", "scratched").ok(t)
	srv("ruling", "--item", item, "--decision", "scratch was there at sale", "--operator-key", opFile).ok(t)
	srv("history", "--item", "01/09506000134352/21/NOSUCH", "--policy", policy).fails(t, exitFail, "not registered")

	// history and bundle verify with pinned keys only.
	srv("history", "--item", item).fails(t, exitUsage, "prov keys --server "+url+" --out keys.policy")
	r = srv("history", "--item", item, "--policy", policy).ok(t)
	for _, want := range []string{"status:      delivered to a buyer", "against the pinned log key", "ruling", "to a buyer by claim code"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("history over HTTP does not show %q:\n%s", want, r.stdout)
		}
	}
	srv("history", "--item", item, "--log-key", logKey, "--operator-key", opKey).ok(t)
	srv("history", "--item", item, "--policy", wrong).fails(t, exitFail, "does NOT verify")

	r = srv("history", "--item", item, "--policy", policy, "--epcis", "--base", "https://id.example.com").ok(t)
	var doc provenance.EPCISDocument
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("--epcis: %v\n%s", err, r.stdout)
	}
	ev := doc.Body.EventList
	if doc.Type != "EPCISDocument" || len(ev) != 7 || ev[0].BizStep != "commissioning" || ev[4].Disposition != "retail_sold" ||
		!strings.HasPrefix(ev[0].EPCList[0], "https://id.example.com/01/09506000134352/21/") {
		t.Errorf("--epcis: %s", r.stdout)
	}

	bundle := w.path("chair.bundle.json")
	srv("bundle", "--item", item, "--out", bundle, "--policy", policy).ok(t)
	r = prov(t, "verify", "--bundle", bundle, "--policy", policy).ok(t)
	if !strings.Contains(r.stdout, "offline, against the pinned") {
		t.Errorf("verify of a bundle fetched over HTTP:\n%s", r.stdout)
	}

	srv("rebuild").fails(t, exitUsage, "not a server")
	prov(t, "history", "--server", "ftp://x", "--item", item, "--policy", policy).fails(t, exitUsage, "want the http:// or https:// URL")
}

// TestServerEnv checks PROV_SERVER selects the server.
func TestServerEnv(t *testing.T) {
	w := newWorld(t)
	url := w.serve()
	e := newEnv(nil, nil, nil)
	e.getenv = func(k string) string {
		if k == "PROV_SERVER" {
			return url
		}
		return ""
	}
	r := runProv(t, e, "keys").ok(t)
	if !strings.Contains(r.stderr, "trust on first use") {
		t.Errorf("keys with PROV_SERVER: %q", r.stderr)
	}
}

// TestWebhooksVerb reads an empty delivery log.
func TestWebhooksVerb(t *testing.T) {
	w := newWorld(t)
	r := w.prov("webhooks").ok(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "no webhook deliveries recorded") {
		t.Errorf("webhooks on a new directory: %q %q", r.stdout, r.stderr)
	}
}

// TestSubmitBatchOverHTTP checks the HTTP backend's batches: receipts
// checked, a duplicate, and refusals said as the local Service says them.
func TestSubmitBatchOverHTTP(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	courier := w.enroll("courier-x", "courier", "Swift")
	url := w.serve()
	hb, err := newHTTPBackend(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(keyFile, serial string) []byte {
		t.Helper()
		s, err := loadSigner(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		id, err := provenance.NewItemID(testGTIN, serial)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := provenance.Sign(provenance.Event{Kind: provenance.KindRegister, Actor: s.Name(), Time: time.Now().UTC().Truncate(time.Second), // not before the enrollment prov made just now
			Item: id, Register: &provenance.Register{Product: "Chair"}}, s)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	reg := sign(acme, "B1")
	res, err := hb.SubmitBatch(t.Context(), [][]byte{reg, reg, []byte("hello"), sign(courier, "B2")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Receipt.Duplicate || res[0].Receipt.LeafHash != merkle.LeafHash(reg) {
		t.Errorf("register: %+v", res[0])
	}
	if res[1].Err != nil || !res[1].Receipt.Duplicate || res[1].Receipt.Index != res[0].Receipt.Index {
		t.Errorf("the same register again: %+v, want a duplicate of index %d", res[1], res[0].Receipt.Index)
	}
	var re *provenance.RuleError
	if !errors.As(res[2].Err, &re) || !errors.Is(res[2].Err, provenance.ErrMalformedEvent) {
		t.Errorf("garbage: %v, want a RuleError matching ErrMalformedEvent", res[2].Err)
	}
	if !errors.Is(res[3].Err, provenance.ErrWrongRole) || !strings.Contains(res[3].Err.Error(), "register of 01/09506000134352/21/B2 by courier-x") {
		t.Errorf("register by a courier: %v, want ErrWrongRole naming the event", res[3].Err)
	}
	if _, err := hb.SubmitBatch(t.Context(), make([][]byte, api.MaxBatch+1)); err == nil || !strings.Contains(err.Error(), "at most 1000 events") {
		t.Errorf("a batch over the limit: %v", err)
	}

	// prov register in batches over HTTP.
	r := prov(t, "register", "--server", url, "--key", acme, "--gtin", testGTIN, "--product", "Chair", "--count", "30", "--batch", "7").ok(t)
	if got := len(strings.Fields(r.stdout)); got != 30 || !strings.Contains(r.stderr, "registered 30 items") {
		t.Errorf("register --count 30 --batch 7: %d links\n%s", got, r.stderr)
	}
	prov(t, "register", "--server", url, "--key", acme, "--gtin", testGTIN, "--product", "Chair", "--count", "3", "--batch", "1001").fails(t, exitUsage, "--batch 1001: want 1 to 1000")
}
