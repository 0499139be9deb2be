package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/client"
	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/web"
	"github.com/provtrail/provtrail/web/api"
)

// busy answers the first len(answers) event POSTs with the given status,
// code and Retry-After, as provd does when it turns a write away, and
// passes every other request to next.
type busy struct {
	next    http.Handler
	answers []busyAnswer
	posts   atomic.Int64
	// batchAnswers answer the first batch POSTs: a whole batch turned
	// away, or, with status 200, every event of it turned away within
	// the batch.
	batchAnswers []busyAnswer
	batchPosts   atomic.Int64
}

type busyAnswer struct {
	status     int
	code       string
	retryAfter string
}

// write answers with a's status and Retry-After, and its error unless the
// status is 200 (a batch's results follow then); it reports whether it
// wrote the body.
func (a busyAnswer) write(w http.ResponseWriter) bool {
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	if a.status == http.StatusOK {
		return false
	}
	w.Write([]byte(`{"error":{"code":"` + a.code + `","message":"busy: ` + a.code + `"}}`))
	return true
}

func (b *busy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == api.BatchPath {
		n := int(b.batchPosts.Add(1))
		if n <= len(b.batchAnswers) {
			a := b.batchAnswers[n-1]
			if a.write(w) {
				return
			}
			var req struct{ Events []string }
			json.NewDecoder(r.Body).Decode(&req)
			results := strings.Repeat(`{"status":503,"error":{"code":"`+a.code+`","message":"busy"}},`, len(req.Events))
			w.Write([]byte(`{"results":[` + strings.TrimSuffix(results, ",") + `]}`))
			return
		}
	}
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/events" {
		n := int(b.posts.Add(1))
		if n <= len(b.answers) {
			b.answers[n-1].write(w)
			return
		}
	}
	if b.next == nil {
		http.NotFound(w, r)
		return
	}
	b.next.ServeHTTP(w, r)
}

// serveBusy serves the world's data directory behind b.
func (w *world) serveBusy(b *busy) string {
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
	b.next = h
	srv.Config.Handler = b
	srv.Start()
	w.t.Cleanup(func() {
		srv.Close()
		n.Close()
	})
	return srv.URL
}

// TestSubmitRetries checks prov waits out a 503 and a 429 with
// Retry-After, sends the event again, and it is logged once.
func TestSubmitRetries(t *testing.T) {
	w := newWorld(t)
	b := &busy{answers: []busyAnswer{
		{http.StatusServiceUnavailable, "overloaded", "1"},
		{http.StatusTooManyRequests, "rate_limited", "1"},
	}}
	url := w.serveBusy(b)
	_, vkey := w.keygen("acme")
	start := time.Now()
	r := prov(t, "enroll", "--server", url, "--id", "acme", "--role", "manufacturer", "--name", "Acme", "--key", vkey,
		"--operator-key", w.data+"/operator.key").ok(t)
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("done in %v: did not wait the two Retry-After: 1", d)
	}
	if got := b.posts.Load(); got != 3 {
		t.Errorf("%d POSTs, want 3", got)
	}
	stderrSays(t, r, "busy: overloaded; sending the event again in 1s (try 2 of 4)", "busy: rate_limited; sending the event again in 1s (try 3 of 4)")
	if got := checkpointSize(t, url); got != "1" {
		t.Errorf("log size %s, want 1", got)
	}
}

// stderrSays checks r's stderr holds each of wants.
func stderrSays(t *testing.T, r result, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
}

// checkpointSize returns the size line of the checkpoint the server at url
// serves.
func checkpointSize(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cp, _ := io.ReadAll(resp.Body)
	lines := strings.Split(string(cp), "\n")
	if len(lines) < 2 {
		t.Fatalf("checkpoint %q", cp)
	}
	return lines[1]
}

// TestBatchRetries checks prov register sends a batch turned away whole
// again, then the events turned away within it, and each item is logged
// once.
func TestBatchRetries(t *testing.T) {
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	b := &busy{batchAnswers: []busyAnswer{
		{http.StatusServiceUnavailable, "overloaded", "1"},
		{http.StatusOK, "overloaded", "1"},
	}}
	url := w.serveBusy(b)
	r := prov(t, "register", "--server", url, "--key", acme, "--gtin", testGTIN, "--product", "Chair", "--count", "12", "--batch", "12").ok(t)
	if got := len(strings.Fields(r.stdout)); got != 12 {
		t.Errorf("%d links printed, want 12:\n%s", got, r.stdout)
	}
	if got := b.batchPosts.Load(); got != 3 {
		t.Errorf("%d batch POSTs, want 3", got)
	}
	stderrSays(t, r, "busy: overloaded; sending the batch again in 1s (try 2 of 4)", "turned away 12 events of a batch; sending them again in 1s (try 3 of 4)")
	if got := checkpointSize(t, url); got != "13" {
		t.Errorf("log size %s, want 13 (an enrollment, 12 items)", got)
	}
}

// TestSubmitGivesUp checks the retries end: after the last try, at the
// capped wait, when ctx ends, and at once for a 503 without Retry-After.
func TestSubmitGivesUp(t *testing.T) {
	always := func(status int, code, retryAfter string) *busy {
		a := busyAnswer{status, code, retryAfter}
		return &busy{answers: []busyAnswer{a, a, a, a, a, a, a, a}}
	}
	backend := func(t *testing.T, b *busy) *httpBackend {
		srv := httptest.NewServer(b)
		t.Cleanup(srv.Close)
		hb, err := newHTTPBackend(srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		return hb
	}
	leaf := []byte("not a note: the server never reads it")

	t.Run("last try", func(t *testing.T) {
		b := always(http.StatusServiceUnavailable, "overloaded", "3600")
		hb := backend(t, b)
		hb.tries, hb.maxWait = 3, 10*time.Millisecond // capped: not an hour
		_, err := hb.Submit(t.Context(), leaf)
		var ae *client.Error
		if !errors.As(err, &ae) || ae.Code != "overloaded" || !strings.Contains(err.Error(), "turned the event away 3 times: busy: overloaded") {
			t.Errorf("err = %v", err)
		}
		if got := b.posts.Load(); got != 3 {
			t.Errorf("%d POSTs, want 3", got)
		}
	})
	t.Run("ctx ends", func(t *testing.T) {
		b := always(http.StatusTooManyRequests, "rate_limited", "30")
		hb := backend(t, b)
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := hb.Submit(ctx, leaf); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("err = %v after %v", err, time.Since(start))
		}
	})
	t.Run("no Retry-After", func(t *testing.T) {
		b := always(http.StatusServiceUnavailable, "internal", "")
		hb := backend(t, b)
		if _, err := hb.Submit(t.Context(), leaf); err == nil || b.posts.Load() != 1 {
			t.Errorf("err = %v after %d POSTs, want an error after 1", err, b.posts.Load())
		}
	})
	t.Run("not a busy answer", func(t *testing.T) {
		b := always(http.StatusConflict, "stale_prev", "1")
		hb := backend(t, b)
		if _, err := hb.Submit(t.Context(), leaf); err == nil || b.posts.Load() != 1 {
			t.Errorf("err = %v after %d POSTs, want an error after 1", err, b.posts.Load())
		}
	})
}
