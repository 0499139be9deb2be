package client_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web/api"
)

// newClient serves h and returns a client of it.
func newClient(t *testing.T, h http.HandlerFunc) *client.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestErrorCodes checks every code provenance names comes back from an
// answer as its error, matched with errors.Is.
func TestErrorCodes(t *testing.T) {
	// The server answers with the code it is sent.
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		code := string(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(api.ErrorResponse{Error: api.Error{Code: code, Message: "refused: " + code}})
	})
	for _, code := range provenance.ErrorCodes() {
		want := provenance.CodeError(code)
		_, err := c.PostEvent(t.Context(), []byte(code))
		var ce *client.Error
		if !errors.As(err, &ce) || !errors.Is(err, want) || ce.Code != code || ce.Status != http.StatusConflict || err.Error() != "refused: "+code {
			t.Errorf("answer with code %s: err = %#v, want an *Error matching %v", code, err, want)
		}
	}
	// A code of the server's own stands for no provenance error.
	_, err := c.PostEvent(t.Context(), []byte("overloaded"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Err != nil || ce.Code != "overloaded" {
		t.Errorf("answer with code overloaded: err = %#v", err)
	}
}

func TestPostEvent(t *testing.T) {
	leaf := []byte("a signed event")
	var posts atomic.Int64
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.URL.Path != api.EventsPath || string(b) != string(leaf) {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		if posts.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"code":"overloaded","message":"busy"}}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(api.Receipt{Index: 3, LeafHash: merkle.LeafHash(leaf), Duplicate: true})
	})
	_, err := c.PostEvent(t.Context(), leaf)
	var ce *client.Error
	if !errors.As(err, &ce) || !ce.TurnedAway() || ce.RetryAfter != 7*time.Second {
		t.Errorf("turned away: err = %#v, want TurnedAway with RetryAfter 7s", err)
	}
	r, err := c.PostEvent(t.Context(), leaf)
	if err != nil || r.Index != 3 || r.LeafHash != merkle.LeafHash(leaf) || !r.Duplicate {
		t.Errorf("PostEvent = %+v, %v", r, err)
	}
}

func TestPostBatch(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		var req api.BatchRequest
		if r.URL.Path != api.BatchPath || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Events) != 4 {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		w.Header().Set("Retry-After", "2")
		json.NewEncoder(w).Encode(api.BatchResponse{Results: []api.BatchResult{
			{Status: http.StatusCreated, Receipt: &api.Receipt{Index: 1, LeafHash: merkle.LeafHash([]byte(req.Events[0]))}},
			{Status: http.StatusConflict, Error: &api.Error{Code: provenance.ErrorCode(provenance.ErrStalePrev), Message: "stale"}},
			{Status: http.StatusServiceUnavailable, Error: &api.Error{Code: "overloaded", Message: "busy"}},
			{Status: http.StatusFailedDependency, Error: &api.Error{Code: provenance.ErrorCode(provenance.ErrNotAttempted), Message: "not attempted"}},
		}})
	})
	res, err := c.PostBatch(t.Context(), [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Receipt.Index != 1 || res[0].Receipt.LeafHash != merkle.LeafHash([]byte("a")) {
		t.Errorf("accepted: %+v", res[0])
	}
	if !errors.Is(res[1].Err, provenance.ErrStalePrev) {
		t.Errorf("refused: %v, want ErrStalePrev", res[1].Err)
	}
	var ce *client.Error
	if !errors.As(res[2].Err, &ce) || !ce.TurnedAway() || ce.RetryAfter != 2*time.Second {
		t.Errorf("turned away: %#v, want the batch's Retry-After", res[2].Err)
	}
	if !errors.Is(res[3].Err, provenance.ErrNotAttempted) {
		t.Errorf("not attempted: %v", res[3].Err)
	}
	if _, err := c.PostBatch(t.Context(), make([][]byte, api.MaxBatch+1)); err == nil || !strings.Contains(err.Error(), fmt.Sprint("at most ", api.MaxBatch)) {
		t.Errorf("a batch over the limit: %v", err)
	}
}

// TestNotProvd checks an answer that is not provd's says so.
func TestNotProvd(t *testing.T) {
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	if _, err := c.Keys(t.Context()); err == nil || !strings.Contains(err.Error(), "404 Not Found (is this a provd?)") {
		t.Errorf("Keys of a server that is not provd: %v", err)
	}
	if _, err := client.New("ftp://example.com", nil); err == nil {
		t.Error("New accepted an ftp:// URL")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":                              0,
		"1":                             time.Second,
		"60":                            time.Minute,
		"0":                             0,
		"-1":                            0,
		"1.5":                           0,
		"soon":                          0,
		"Sun, 01 Mar 2026 12:00:30 GMT": 30 * time.Second,
		"Sun, 01 Mar 2026 11:00:00 GMT": 0,
	} {
		if got := client.RetryAfter(h, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", h, got, want)
		}
	}
}
