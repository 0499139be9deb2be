package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/web"
	"golang.org/x/mod/sumdb/note"
)

// gatedService is the real Service, whose Submit waits, while a gate is
// set, until the gate is closed: a slow disk, on demand.
type gatedService struct {
	web.Service
	entered chan struct{} // told of each Submit that waits at the gate

	mu   sync.Mutex
	gate chan struct{}
	fail error // while non-nil, Submit fails with it and appends nothing
}

func (g *gatedService) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	g.mu.Lock()
	gate, fail := g.gate, g.fail
	g.mu.Unlock()
	if fail != nil {
		return provenance.Receipt{}, fmt.Errorf("append event: %w", fail)
	}
	if gate != nil {
		g.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return provenance.Receipt{}, ctx.Err()
		}
	}
	return g.Service.Submit(ctx, leaf)
}

// hold makes every Submit wait until the returned function is called.
func (g *gatedService) hold() (open func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gate := make(chan struct{})
	g.gate = gate
	return sync.OnceFunc(func() {
		g.mu.Lock()
		g.gate = nil
		g.mu.Unlock()
		close(gate)
	})
}

// newLimitedEnv is newEnv with write limits, trusted proxies, and the
// Service behind a gate.
func newLimitedEnv(t *testing.T, writes web.WriteLimits, proxies []string) (*env, *gatedService) {
	t.Helper()
	node := openNode(t)
	svc := &gatedService{Service: node.Service, entered: make(chan struct{}, 100)}
	s, err := web.New(web.Config{Service: svc, Log: node.Log, Scans: &memScans{}, BaseURL: baseURL,
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil)), Writes: writes, TrustedProxies: proxies})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, node: node, server: s, srv: srv, keys: map[string]note.Signer{},
		time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}, svc
}

// direct submits a leaf to the Service itself, around the web layer and
// its limits.
func (e *env) direct(leaf []byte) {
	e.t.Helper()
	if _, err := e.node.Service.Submit(context.Background(), leaf); err != nil {
		e.t.Fatal(err)
	}
}

// postFrom POSTs leaf with optional headers and returns the response, its
// body read. It may run in a goroutine of the test: a failed request is
// an error and an empty response.
func (e *env) postFrom(leaf []byte, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/events", strings.NewReader(string(leaf)))
	if err != nil {
		e.t.Error(err)
		return &http.Response{Header: http.Header{}}, nil
	}
	req.Header.Set("Content-Type", "text/plain")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// A write held at the gate by mistake fails the test, not hangs it.
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Error(err)
		return &http.Response{Header: http.Header{}}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// turnedAway checks an answer is status with code, a Retry-After of
// retry seconds ("" for any whole number of at least 1), and a message
// holding msg. It may run in a goroutine of the test.
func turnedAway(t *testing.T, status int, code, retry, msg string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d\n%s", resp.StatusCode, status, body)
		return
	}
	ra := resp.Header.Get("Retry-After")
	if n, err := strconv.Atoi(ra); err != nil || n < 1 || (retry != "" && ra != retry) {
		t.Errorf("Retry-After %q, want %q", ra, retry)
	}
	var ae apiErr
	if err := json.Unmarshal(body, &ae); err != nil {
		t.Errorf("body is not a JSON error: %v\n%s", err, body)
		return
	}
	if ae.Error.Code != code || !strings.Contains(ae.Error.Message, msg) {
		t.Errorf("error %+v, want code %q and a message saying %q", ae.Error, code, msg)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
}

// metric returns the value of one sample line of /metrics, or "".
func (e *env) metric(sample string) string {
	e.t.Helper()
	_, body := e.get("/metrics")
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestOverload fills the one write slot with a submission held at the
// gate: more writes are turned away with 503 and Retry-After and append
// nothing, while every read is still served; once the slot is free,
// writes are accepted again.
func TestOverload(t *testing.T) {
	e, svc := newLimitedEnv(t, web.WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: 50 * time.Millisecond}, nil)
	id := mustItem(t, gtin, "OVER1")
	scenario(e, id, "Trail chair")
	size := e.checkpointSize()

	open := svc.hold()
	defer open()
	held := e.handoffLeaf("courier", id, provenance.Handoff{To: "maker"})
	first := make(chan int)
	go func() {
		resp, body := e.postFrom(held)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("the held write: %d %s", resp.StatusCode, body)
		}
		first <- resp.StatusCode
	}()
	<-svc.entered // it holds the slot

	// One waits in the queue for 50 ms, the others find it full: all are
	// turned away.
	const extra = 6
	var wg sync.WaitGroup
	for i := range extra {
		leaf := e.registerLeaf("maker", mustItem(t, gtin, fmt.Sprintf("OVER-X%d", i)), "Extra", "Shenzhen")
		wg.Go(func() {
			resp, body := e.postFrom(leaf)
			turnedAway(t, http.StatusServiceUnavailable, "overloaded", "1", "the server is at capacity; retry after 1 second", resp, body)
		})
	}
	wg.Wait()

	// Reads are never limited: the history page, its JSON, the bundle,
	// the checkpoint and a tile are served while the slot is taken.
	for _, path := range []string{
		"/01/" + gtin + "/21/OVER1",
		"/api/v1/items/" + gtin + "/OVER1",
		"/api/v1/items/" + gtin + "/OVER1/bundle",
		"/checkpoint",
		"/tile/0/000.p/1",
		"/keys",
	} {
		if resp, body := e.get(path); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s during the overload: %d %s", path, resp.StatusCode, body)
		}
	}
	if got := e.checkpointSize(); got != size {
		t.Errorf("log grew from %d to %d while every write was held or turned away", size, got)
	}
	if got := e.metric(`provtrail_events_submitted_total{outcome="overloaded"}`); got != strconv.Itoa(extra) {
		t.Errorf("overloaded writes counted %q, want %d", got, extra)
	}

	open()
	if status := <-first; status != http.StatusCreated {
		t.Fatalf("the held write: %d", status)
	}
	e.ok(e.receiveLeaf("maker", id, "Shenzhen"))
	if got := e.checkpointSize(); got != size+2 {
		t.Errorf("log size %d after the overload, want %d", got, size+2)
	}
}

// TestQueueWait checks a write that waits in the queue gets the slot when
// it is freed within QueueWait.
func TestQueueWait(t *testing.T) {
	e, svc := newLimitedEnv(t, web.WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: 10 * time.Second}, nil)
	id := mustItem(t, gtin, "QUEUE1")
	scenario(e, id, "Trail chair")
	open := svc.hold()
	defer open()
	done := make(chan int, 2)
	post := func(leaf []byte) {
		resp, body := e.postFrom(leaf)
		if resp.StatusCode != http.StatusCreated {
			t.Errorf("%d %s", resp.StatusCode, body)
		}
		done <- resp.StatusCode
	}
	go post(e.registerLeaf("maker", mustItem(t, gtin, "QUEUE2"), "Queued", "Shenzhen"))
	<-svc.entered
	go post(e.registerLeaf("maker", mustItem(t, gtin, "QUEUE3"), "Queued", "Shenzhen"))
	time.Sleep(100 * time.Millisecond) // the second waits for the slot
	open()
	<-done
	<-done
}

// TestClientRate checks a client over its rate gets 429 with Retry-After
// before its body is read, that neither X-Forwarded-For nor the client's
// other IPv6 addresses of its /64 get around it, and that other clients
// are still accepted.
func TestClientRate(t *testing.T) {
	e, _ := newLimitedEnv(t, web.WriteLimits{ClientRate: 0.1, ClientBurst: 2}, nil)
	e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
	reg := func(serial string) []byte {
		return e.registerLeaf("maker", mustItem(t, gtin, serial), "Rate", "Shenzhen")
	}
	e.ok(reg("RATE1"))
	e.ok(reg("RATE2"))
	size := e.checkpointSize()
	// The bucket is empty; a token comes every 10 s.
	resp, body := e.postFrom(reg("RATE3"))
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "this client sends more than 0.1 events/s (bursts of 2); retry after", resp, body)
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra > 10 {
		t.Errorf("Retry-After %d, want at most 10 (one token at 0.1/s)", ra)
	}
	// No proxy is trusted: a client cannot name itself another.
	resp, body = e.postFrom(reg("RATE3"), "X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.10")
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "events/s", resp, body)
	// Even a malformed body is turned away before it is read.
	resp, body = e.postFrom([]byte("hello"))
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "events/s", resp, body)

	// Other clients, as the connection's address says.
	send := func(remote string, leaf []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/events", strings.NewReader(string(leaf)))
		req.Header.Set("Content-Type", "text/plain")
		req.RemoteAddr = remote
		w := httptest.NewRecorder()
		e.server.ServeHTTP(w, req)
		return w
	}
	if w := send("198.51.100.7:4711", reg("RATE4")); w.Code != http.StatusCreated {
		t.Errorf("another IPv4 client: %d %s", w.Code, w.Body)
	}
	// An IPv6 client is its /64: its other addresses share its bucket.
	for i, remote := range []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::2]:1"} {
		if w := send(remote, reg(fmt.Sprintf("RATE%d", 5+i))); w.Code != http.StatusCreated {
			t.Errorf("IPv6 client %s: %d %s", remote, w.Code, w.Body)
		}
	}
	if w := send("[2001:db8:1:2:ffff::7]:1", reg("RATE7")); w.Code != http.StatusTooManyRequests {
		t.Errorf("a third write from the same /64: %d %s", w.Code, w.Body)
	}
	if w := send("[2001:db8:1:3::1]:1", reg("RATE7")); w.Code != http.StatusCreated {
		t.Errorf("another /64: %d %s", w.Code, w.Body)
	}
	if got, want := e.checkpointSize(), size+4; got != want {
		t.Errorf("log size %d, want %d: turned-away writes appended", got, want)
	}
	if got := e.metric(`provtrail_events_submitted_total{outcome="rate_limited"}`); got != "4" {
		t.Errorf("rate-limited writes counted %q, want 4", got)
	}
	// Reads are not limited.
	if resp, body := e.get("/01/" + gtin + "/21/RATE1"); resp.StatusCode != http.StatusOK {
		t.Errorf("history page of a rate-limited client: %d %s", resp.StatusCode, body)
	}
}

// TestTrustedProxy checks that behind a trusted proxy each client is the
// one X-Forwarded-For names, and the proxy itself is not one client.
func TestTrustedProxy(t *testing.T) {
	e, _ := newLimitedEnv(t, web.WriteLimits{ClientRate: 0.1, ClientBurst: 1}, []string{"127.0.0.0/8", "::1"})
	e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
	reg := func(serial string) []byte {
		return e.registerLeaf("maker", mustItem(t, gtin, serial), "Proxied", "Shenzhen")
	}
	if resp, body := e.postFrom(reg("PROXY1"), "X-Forwarded-For", "203.0.113.1"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("first client: %d %s", resp.StatusCode, body)
	}
	resp, body := e.postFrom(reg("PROXY2"), "X-Forwarded-For", "203.0.113.1")
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "events/s", resp, body)
	// The client cannot prepend an address: the proxy appends the real one.
	resp, body = e.postFrom(reg("PROXY2"), "X-Forwarded-For", "192.0.2.50, 203.0.113.1")
	turnedAway(t, http.StatusTooManyRequests, "rate_limited", "", "events/s", resp, body)
	if resp, body := e.postFrom(reg("PROXY2"), "X-Forwarded-For", "203.0.113.2"); resp.StatusCode != http.StatusCreated {
		t.Errorf("second client behind the proxy: %d %s", resp.StatusCode, body)
	}
}

// TestStorageFull checks a write that finds the disk full is a 503 that
// says so, with Retry-After, appends nothing, and is counted.
func TestStorageFull(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		t.Run(errno.Error(), func(t *testing.T) {
			e, svc := newLimitedEnv(t, web.WriteLimits{}, nil)
			e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
			size := e.checkpointSize()
			svc.mu.Lock()
			svc.fail = &os.PathError{Op: "write", Path: "provtrail.db", Err: errno}
			svc.mu.Unlock()
			resp, body := e.postFrom(e.registerLeaf("maker", mustItem(t, gtin, "FULL1"), "Full", "Shenzhen"))
			turnedAway(t, http.StatusServiceUnavailable, "storage_full", "60", "the server's disk is full; the event was not stored; retry later", resp, body)
			if strings.Contains(string(body), "provtrail.db") {
				t.Errorf("the answer shows the internal error: %s", body)
			}
			if got := e.checkpointSize(); got != size {
				t.Errorf("log grew from %d to %d", size, got)
			}
			if got := e.metric(`provtrail_events_submitted_total{outcome="storage_full"}`); got != "1" {
				t.Errorf("storage_full counted %q, want 1", got)
			}
			svc.mu.Lock()
			svc.fail = nil
			svc.mu.Unlock()
			e.ok(e.registerLeaf("maker", mustItem(t, gtin, "FULL1"), "Full", "Shenzhen"))
		})
	}
}

// TestBadLimits checks New refuses negative limits and proxies that are
// no address.
func TestBadLimits(t *testing.T) {
	node := openNode(t)
	for name, cfg := range map[string]web.Config{
		"in flight": {Writes: web.WriteLimits{MaxInFlight: -1}},
		"queued":    {Writes: web.WriteLimits{MaxQueued: -1}},
		"wait":      {Writes: web.WriteLimits{QueueWait: -time.Second}},
		"rate":      {Writes: web.WriteLimits{ClientRate: -1}},
		"burst":     {Writes: web.WriteLimits{ClientRate: 1, ClientBurst: -1}},
		"proxy":     {TrustedProxies: []string{"proxy.example.com"}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg.Service, cfg.Log, cfg.BaseURL = node.Service, node.Log, baseURL
			if _, err := web.New(cfg); err == nil {
				t.Errorf("New(%+v) = nil error", cfg)
			}
		})
	}
}

// enrollEvent is the operator's enrollment of a new actor id, whose key
// e keeps.
func enrollEvent(e *env, id string, role provenance.Role) provenance.Event {
	e.t.Helper()
	signer, vkey := newSigner(e.t, id)
	e.keys[id] = signer
	return provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: id, Role: role, Name: id, Key: vkey}}
}

// lockedBuffer is a log sink the server's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestClientGone checks a client that goes away while its write waits for
// a slot, or while it is being appended, is logged and counted as such
// (499, "client_closed"), not as an internal error, and appends nothing.
func TestClientGone(t *testing.T) {
	node := openNode(t)
	svc := &gatedService{Service: node.Service, entered: make(chan struct{}, 100)}
	var logs lockedBuffer
	s, err := web.New(web.Config{Service: svc, Log: node.Log, Scans: &memScans{}, BaseURL: baseURL,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Writes: web.WriteLimits{MaxInFlight: 1, MaxQueued: 1, QueueWait: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	e := &env{t: t, node: node, server: s, srv: srv, keys: map[string]note.Signer{}, time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	e.direct(e.sign(enrollEvent(e, "maker", provenance.RoleManufacturer), e.node.Operator))
	size := e.checkpointSize()

	open := svc.hold()
	defer open()
	send := func(ctx context.Context, serial string) chan error {
		done := make(chan error, 1)
		leaf := e.registerLeaf("maker", mustItem(t, gtin, serial), "Gone", "Shenzhen")
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/v1/events", strings.NewReader(string(leaf)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/plain")
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		return done
	}
	ctxA, cancelA := context.WithCancel(t.Context())
	a := send(ctxA, "GONE1")
	<-svc.entered // A holds the only slot, at the gate
	ctxB, cancelB := context.WithCancel(t.Context())
	b := send(ctxB, "GONE2")
	time.Sleep(100 * time.Millisecond) // B waits for the slot
	cancelB()
	cancelA()
	for _, done := range []chan error{a, b} {
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("client: %v, want its own cancellation", err)
		}
	}
	// The server notices the clients are gone and ends both requests.
	deadline := time.Now().Add(10 * time.Second)
	for e.metric(`provtrail_events_submitted_total{outcome="client_closed"}`) != "2" && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.metric(`provtrail_events_submitted_total{outcome="client_closed"}`); got != "2" {
		t.Errorf("client_closed counted %q, want 2\n%s", got, logs.String())
	}
	out := logs.String()
	if strings.Contains(out, "internal error") || strings.Count(out, `"status":499`) != 2 {
		t.Errorf("log does not say two requests ended 499 without an internal error:\n%s", out)
	}
	if got := e.checkpointSize(); got != size {
		t.Errorf("log grew from %d to %d", size, got)
	}
}
