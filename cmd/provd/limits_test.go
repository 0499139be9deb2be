package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/provenance"
)

// TestWriteLimits runs provd with a client rate behind a trusted proxy:
// a client over its rate gets 429 with Retry-After, another client behind
// the same proxy is accepted, and pages are still served.
func TestWriteLimits(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startProvd(t, data, "--client-rate", "0.1", "--client-burst", "1", "--trusted-proxies", "127.0.0.1,::1",
		"--max-inflight-writes", "4", "--write-queue", "4", "--write-queue-wait", "2s")
	k := newKeys(t, data)
	post := func(leaf []byte, client string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.url+"/api/v1/events", bytes.NewReader(leaf))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := post(k.enroll("maker", provenance.RoleManufacturer), "203.0.113.1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first event: %s %s", resp.Status, b)
	}
	leaf := k.enroll("courier", provenance.RoleCourier)
	resp, b := post(leaf, "203.0.113.1")
	var e struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(b, &e)
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 10 ||
		e.Error.Code != "rate_limited" || !strings.Contains(e.Error.Message, "more than 0.1 events/s") {
		t.Errorf("second event of the client: %s, Retry-After %q, %s", resp.Status, resp.Header.Get("Retry-After"), b)
	}
	if resp, b := post(leaf, "203.0.113.2"); resp.StatusCode != http.StatusCreated {
		t.Errorf("another client behind the proxy: %s %s", resp.Status, b)
	}
	if code, b := s.get("/actors/courier"); code != http.StatusOK {
		t.Errorf("actor page: %d %s", code, b)
	}
	if !strings.Contains(s.stdout.String(), "provd listening") {
		t.Errorf("output:\n%s", s.stdout)
	}
}
