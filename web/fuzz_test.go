package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// fuzzEnv is an env with a maker, a courier and one item (the abuse
// fixture), and seeds: leaves the log accepted or would accept.
func fuzzEnv(f *testing.F) (*env, [][]byte) {
	e := newEnv(f, true)
	e.enroll("maker", provenance.RoleManufacturer, "Maker")
	e.enroll("courier", provenance.RoleCourier, "Courier")
	id := mustItem(f, abuseGTIN, "FUZZ1")
	reg := e.registerLeaf("maker", id, "Handbag", "Shenzhen")
	e.ok(reg)
	next := e.handoffLeaf("maker", id, provenance.Handoff{To: "courier"}) // valid, not submitted
	fresh := e.registerLeaf("maker", mustItem(f, abuseGTIN, "FUZZ2"), "<script>x</script>", "Paris")
	return e, [][]byte{reg, next, fresh}
}

// FuzzPostEvent posts arbitrary bodies to POST /api/v1/events: never a
// 5xx or a panic, and the log grows by one exactly when the answer is 201.
func FuzzPostEvent(f *testing.F) {
	e, seeds := fuzzEnv(f)
	for _, s := range seeds {
		f.Add(s, "text/plain")
	}
	f.Add([]byte("hello"), "text/plain")
	f.Add([]byte(""), "")
	f.Add([]byte("provtrail-event/v1\n{}\n\n— maker AAAA\n"), "application/octet-stream")
	f.Add(bytes.Repeat(seeds[0], 3), "text/plain; charset=utf-8")
	f.Add([]byte("a=b"), "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, body []byte, ctype string) {
		e.t = t
		before := e.checkpointSize()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		e.server.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		grew := e.checkpointSize() - before
		switch {
		case w.Code == http.StatusCreated && grew != 1:
			t.Fatalf("201 but the log grew by %d", grew)
		case w.Code != http.StatusCreated && grew != 0:
			t.Fatalf("%d but the log grew by %d: %s", w.Code, grew, w.Body)
		}
		if w.Code != http.StatusCreated && w.Code != http.StatusOK && !strings.Contains(w.Body.String(), `"code"`) {
			t.Fatalf("%d without a JSON error: %s", w.Code, w.Body)
		}
	})
}

// FuzzPostBatch posts arbitrary bodies to POST /api/v1/events/batch:
// never a 5xx or a panic, a 200 has one result per event and the log grows
// by the number of 201 results, and any other answer is a JSON error that
// appended nothing.
func FuzzPostBatch(f *testing.F) {
	e, seeds := fuzzEnv(f)
	f.Add(batchBody(f, seeds...))
	f.Add(batchBody(f, seeds[2], seeds[2], []byte("hello")))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":["x",1]}`))
	f.Add([]byte(`{"events":["\u0000"]}{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		e.t = t
		before := e.checkpointSize()
		req := httptest.NewRequest(http.MethodPost, "/api/v1/events/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		e.server.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		grew := e.checkpointSize() - before
		if w.Code != http.StatusOK {
			if grew != 0 || !strings.Contains(w.Body.String(), `"code"`) {
				t.Fatalf("%d, the log grew by %d: %s", w.Code, grew, w.Body)
			}
			return
		}
		var br batchResponse
		if err := json.Unmarshal(w.Body.Bytes(), &br); err != nil {
			t.Fatalf("200 with a body that is no batch answer: %v\n%s", err, w.Body)
		}
		created := 0
		for i, r := range br.Results {
			switch {
			case r.Status >= 500:
				t.Fatalf("result %d: %d %+v", i, r.Status, r.Error)
			case r.Status == http.StatusCreated:
				created++
			case r.Status != http.StatusOK && (r.Error == nil || r.Error.Message == ""):
				t.Fatalf("result %d: %d without an error that says why", i, r.Status)
			}
		}
		if uint64(created) != grew || br.Accepted != created {
			t.Fatalf("%d results 201, accepted %d, but the log grew by %d", created, br.Accepted, grew)
		}
	})
}

// FuzzResolve requests arbitrary paths under /01/ (and the API's item
// route): never a 5xx or a panic, nothing appended.
func FuzzResolve(f *testing.F) {
	e, _ := fuzzEnv(f)
	for _, p := range []string{
		"/01/" + abuseGTIN + "/21/FUZZ1", "/01/9506000134352/21/FUZZ1", "/01/09506000134353/21/X",
		"/01/" + abuseGTIN + "/21/%2e%2e%2f", "/01/" + abuseGTIN + "/21/A%00", "/01/" + abuseGTIN + "/21/A%252F",
		"/01/" + abuseGTIN + "/21/%C0%AF", "/01/../../etc/passwd", "/01/" + abuseGTIN + "/21/FUZZ1?linkType=all",
		"/01/" + abuseGTIN + "/21/FUZZ1?8030=AAAA", "/qr/01/" + abuseGTIN + "/21/FUZZ1.svg", "/api/v1/items/" + abuseGTIN + "/FUZZ1",
		"/labels?item=/01/" + abuseGTIN + "/21/FUZZ1",
	} {
		f.Add(p, "")
	}
	f.Add("/01/"+abuseGTIN+"/21/FUZZ1", "application/linkset+json")
	f.Add("/01/"+abuseGTIN+"/21/FUZZ1", "application/ld+json")
	f.Fuzz(func(t *testing.T, path, accept string) {
		e.t = t
		if !strings.HasPrefix(path, "/") {
			path = "/01/" + path
		}
		req, err := http.NewRequest(http.MethodGet, "http://id.example.com"+path, nil)
		if err != nil {
			return // net/http would refuse the request line
		}
		req.RequestURI = req.URL.RequestURI()
		req.Header.Set("Accept", accept)
		before := e.checkpointSize()
		w := httptest.NewRecorder()
		e.server.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("GET %q: %d %.300s", path, w.Code, w.Body)
		}
		if e.checkpointSize() != before {
			t.Fatalf("GET %q appended", path)
		}
	})
}
