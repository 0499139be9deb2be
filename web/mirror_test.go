package web_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
	"github.com/provtrail/provtrail/web/api"
)

const originURL = "https://origin.example.com"

// TestMirrorMode serves a node's log as a mirror would: every write is
// refused with 403 read_only_mirror naming the origin and changes
// nothing; every page says whose log it shows, in the page's language;
// /healthz and /metrics say whether it follows.
func TestMirrorMode(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "MIRROR-1")
	scenario(e, id, "Tea")
	var stopped atomic.Pointer[error]
	s, err := web.New(web.Config{Service: e.node.Service, Log: e.node.Log, BaseURL: baseURL,
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil)),
		Mirror: &web.Mirror{URL: originURL, Stopped: func() error {
			if p := stopped.Load(); p != nil {
				return *p
			}
			return nil
		}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	m := &env{t: t, node: e.node, server: s, srv: srv, keys: e.keys, time: e.time}
	size := e.checkpointSize()

	writes := []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/events", string(e.registerLeaf("maker", mustItem(t, gtin, "MIRROR-2"), "Tea", "Shenzhen"))},
		{http.MethodPost, "/api/v1/events/batch", "[]"},
		{http.MethodPut, "/api/v1/events", "x"},
		{http.MethodDelete, "/api/v1/items/" + gtin + "/MIRROR-1", ""},
		{http.MethodPost, "/courier", "a=b"},
		{http.MethodPatch, "/checkpoint", ""},
	}
	for _, w := range writes {
		req, _ := http.NewRequest(w.method, srv.URL+w.path, strings.NewReader(w.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body api.ErrorResponse
		if resp.StatusCode != http.StatusForbidden || json.Unmarshal(b, &body) != nil || body.Error.Code != "read_only_mirror" ||
			!strings.Contains(body.Error.Message, originURL) {
			t.Errorf("%s %s: %d %s, want 403 read_only_mirror naming %s", w.method, w.path, resp.StatusCode, b, originURL)
		}
		if !errors.Is(provenance.CodeError(body.Error.Code), provenance.CodeError("read_only_mirror")) {
			t.Errorf("code %q does not map back", body.Error.Code)
		}
	}
	if got := e.checkpointSize(); got != size {
		t.Errorf("the log grew from %d to %d", size, got)
	}

	// Every page says it, in its language.
	for _, tc := range []struct{ path, lang, want string }{
		{id.DigitalLink(""), "en", "This server mirrors the log of " + originURL},
		{id.DigitalLink("") + "?lang=zh", "zh", "本服务器是 " + originURL + " 的日志"},
		{"/verify", "en", "verified up to its checkpoint of size"},
		{"/verify?lang=zh", "zh", "已验证到大小为"},
		{"/courier", "en", "hand-offs, receipts and registrations go to " + originURL},
		{"/manufacturer?lang=zh", "zh", "交接、签收和登记请前往 " + originURL},
		{"/actors/maker", "en", "origin id.example.com/log"},
		{"/01/" + gtin + "/21/NOPE", "en", "This server mirrors"},
	} {
		_, body := m.get(tc.path)
		note := doc(t, body).Find(`[data-testid="mirror-note"]`)
		if note.Length() != 1 || !strings.Contains(note.Text(), tc.want) {
			t.Errorf("%s: mirror note %q, want it to say %q", tc.path, note.Text(), tc.want)
		}
		if sz, _ := note.Attr("data-size"); sz != fmt.Sprint(size) {
			t.Errorf("%s: size %q, want %d", tc.path, sz, size)
		}
	}
	// The origin's own server says nothing of the kind.
	if _, body := e.get(id.DigitalLink("")); doc(t, body).Find(`[data-testid="mirror-note"]`).Length() != 0 {
		t.Error("the origin's page carries a mirror note")
	}

	if _, body := m.get("/healthz"); !strings.Contains(string(body), fmt.Sprintf("mirror of %s: following, at the checkpoint of size %d", originURL, size)) {
		t.Errorf("healthz: %s", body)
	}
	if _, body := m.get("/metrics"); !strings.Contains(string(body), "provtrail_mirror_following 1") || !strings.Contains(string(body), fmt.Sprintf("provtrail_mirror_checkpoint_size %d", size)) {
		t.Errorf("metrics lack the mirror's gauges")
	}
	fork := errors.New("a fork")
	stopped.Store(&fork)
	if resp, body := m.get("/healthz"); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "not following") || !strings.Contains(string(body), "a fork") {
		t.Errorf("healthz of a stopped mirror: %d %s", resp.StatusCode, body)
	}
	if _, body := m.get("/metrics"); !strings.Contains(string(body), "provtrail_mirror_following 0") {
		t.Errorf("metrics of a stopped mirror do not say so")
	}
	_, body := m.get(id.DigitalLink(""))
	if doc(t, body).Find(`[data-testid="mirror-stopped"]`).Length() != 1 {
		t.Errorf("the page of a stopped mirror does not say it stopped")
	}
}
