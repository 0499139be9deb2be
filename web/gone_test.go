package web_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
)

// TestPageClientGone checks that a history page whose client went away
// before it was built is answered 499, as the API answers it, and is not
// logged as an internal error.
func TestPageClientGone(t *testing.T) {
	e := newEnv(t, true)
	e.enroll("acme", provenance.RoleManufacturer, "Acme")
	item := mustItem(t, "09506000134352", "GONE-1")
	e.ok(e.registerLeaf("acme", item, "Handbag", "Shenzhen"))

	var logs bytes.Buffer
	s, err := web.New(web.Config{Service: e.node.Service, Log: e.node.Log, Scans: &memScans{}, BaseURL: baseURL,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/"+item.String(), nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 499 {
		t.Errorf("page for a client gone: status %d, want 499", rec.Code)
	}
	if strings.Contains(logs.String(), "internal error") {
		t.Errorf("a client gone was logged as an internal error:\n%s", logs.String())
	}

	// The same page for a client still there is served.
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+item.String(), nil))
	if rec.Code != http.StatusOK {
		t.Errorf("page: status %d, want 200", rec.Code)
	}
}
