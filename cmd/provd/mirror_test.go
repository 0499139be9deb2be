package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/witness"
	"github.com/provtrail/provtrail/provenance"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// An originProxy stands in front of an origin provd, so that the origin
// behind one URL can be swapped for another (a rewritten history under
// the same keys) or its answers altered, as a compromised operator or a
// man in the middle would. It counts the entry bundles it serves.
type originProxy struct {
	target  atomic.Pointer[url.URL]
	tamper  atomic.Pointer[func(path string, body []byte) []byte]
	down    atomic.Bool // answer 503 to everything
	entries atomic.Int64
	srv     *httptest.Server
}

func newOriginProxy(t *testing.T, origin *server) *originProxy {
	t.Helper()
	p := &originProxy{}
	p.point(t, origin)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(p.target.Load()) },
		ModifyResponse: func(resp *http.Response) error {
			path := strings.TrimPrefix(resp.Request.URL.Path, "/")
			if strings.HasPrefix(path, "tile/entries/") {
				p.entries.Add(1)
			}
			f := p.tamper.Load()
			if f == nil || resp.StatusCode != http.StatusOK {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = (*f)(path, b)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Del("Content-Length")
			return nil
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "origin down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// point sends the proxy's requests to origin.
func (p *originProxy) point(t *testing.T, origin *server) {
	u, err := url.Parse(origin.url)
	if err != nil {
		t.Fatal(err)
	}
	p.target.Store(u)
}

// startMirror runs provd --mirror URL on data, like startProvd, and
// returns its log lines as well.
func startMirror(t *testing.T, data, origin string, args ...string) (*server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, data: data, stdout: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	args = append([]string{"--addr", "127.0.0.1:0", "--data", data, "--log-format", "text", "--mirror", origin, "--poll-interval", "20ms"}, args...)
	go func() {
		s.done <- run(ctx, args, func(string) string { return "" }, s.stdout, io.MultiWriter(logs, logWriter{t}))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Error("the mirror did not stop")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for s.url == "" {
		if m := listening.FindStringSubmatch(s.stdout.String()); m != nil {
			s.url = m[1]
			break
		}
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("the mirror stopped before listening: %v\n%s", err, s.stdout)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not start:\n%s", s.stdout)
		}
	}
	s.keys = s.trust()
	return s, logs
}

// catchUp waits until the mirror serves the origin's checkpoint, byte for
// byte. Its index may apply it a poll later: compare answers with same.
func catchUp(t *testing.T, mirror, origin *server) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, want := origin.get("/checkpoint")
		code, got := mirror.get("/checkpoint")
		if code == http.StatusOK && bytes.Equal(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not catch up: it serves %d %q, the origin %q", code, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// same fetches path from the origin and the mirror until both answer 200
// with answers eq finds equal, for a few seconds: the mirror's index
// applies a checkpoint on its next poll after the mirror verified it. It
// returns the mirror's last answer and whether they were equal.
func same(t *testing.T, mirror, origin *server, path string, eq func(a, b []byte) bool) ([]byte, bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		oc, ob := origin.get(path)
		mc, mb := mirror.get(path)
		if oc == http.StatusOK && mc == oc && eq(ob, mb) {
			return mb, true
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the mirror answers %d (%d bytes), the origin %d (%d bytes)", path, mc, len(mb), oc, len(ob))
			return mb, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// custody writes the events of n items to the origin: each registered by
// maker, handed to courier and received.
func custody(t *testing.T, origin *server, k *keys, mu *sync.Mutex, prefix string, n int) []provenance.ItemID {
	t.Helper()
	sign := func(e provenance.Event) []byte {
		mu.Lock()
		defer mu.Unlock()
		return k.sign(e)
	}
	var ids []provenance.ItemID
	for i := range n {
		id := mustItem(t, fmt.Sprintf("%s-%d", prefix, i))
		reg := sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: id, Place: "Shenzhen",
			Register: &provenance.Register{Product: "Tea " + prefix, Lot: "L1"}})
		origin.submit(reg)
		hand := sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "maker", Item: id, Prev: merkle.LeafHash(reg),
			Handoff: &provenance.Handoff{To: "courier"}})
		origin.submit(hand)
		origin.submit(sign(provenance.Event{Kind: provenance.KindReceive, Actor: "courier", Item: id, Prev: merkle.LeafHash(hand),
			Place: "Hong Kong", Receive: &provenance.Receive{By: "courier"}}))
		ids = append(ids, id)
	}
	return ids
}

// startOrigin starts a provd with a maker and a courier enrolled.
func startOrigin(t *testing.T, data string) (*server, *keys) {
	t.Helper()
	origin := startProvd(t, data, "--poll-interval", "20ms")
	k := newKeys(t, data)
	origin.submit(k.enroll("maker", provenance.RoleManufacturer))
	origin.submit(k.enroll("courier", provenance.RoleCourier))
	return origin, k
}

// mainHTML is the page's content, without the mirror's note (outside
// main) and the count of scans, which each server keeps for itself.
func mainHTML(t *testing.T, page []byte) string {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	d.Find(`section.scans`).Remove()
	h, err := d.Find("main").Html()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestMirrorOfALiveOrigin follows an origin under write load: the mirror
// catches up and then serves, for the same checkpoint, byte-identical
// bundles and checkpoint, the same history JSON and history page content,
// and refuses writes, naming the origin, without changing anything.
func TestMirrorOfALiveOrigin(t *testing.T) {
	origin, k := startOrigin(t, filepath.Join(t.TempDir(), "origin"))
	var mu sync.Mutex
	custody(t, origin, k, &mu, "EARLY", 3)
	// Digital Links carry the origin's public base, as its QR codes do.
	mirror, _ := startMirror(t, filepath.Join(t.TempDir(), "mirror"), origin.url, "--base-url", origin.url)
	if mirror.keys != origin.keys {
		t.Fatalf("the mirror pinned %+v, the origin's keys are %+v", mirror.keys, origin.keys)
	}
	catchUp(t, mirror, origin)
	same(t, mirror, origin, "/api/v1/items/09506000134352/EARLY-2", bytes.Equal)

	// Writers on the origin while the mirror follows.
	var wg sync.WaitGroup
	items := make([][]provenance.ItemID, 4)
	for w := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			items[w] = custody(t, origin, k, &mu, fmt.Sprintf("LOAD%d", w), 25)
		}()
	}
	// Meanwhile, what the mirror serves verifies against the origin's keys.
	for range 5 {
		time.Sleep(50 * time.Millisecond)
		code, b := mirror.get("/api/v1/items/09506000134352/EARLY-0/bundle")
		if code != http.StatusOK {
			t.Fatalf("bundle from the mirror under load: %d %s", code, b)
		}
		if _, err := provenance.VerifyBundle(b, origin.keys); err != nil {
			t.Fatalf("the mirror's bundle under load does not verify: %v", err)
		}
	}
	wg.Wait()
	cp := catchUp(t, mirror, origin)
	t.Logf("caught up at:\n%s", cp)

	all := []provenance.ItemID{mustItem(t, "EARLY-0"), mustItem(t, "EARLY-2")}
	for _, ids := range items {
		all = append(all, ids[0], ids[len(ids)-1])
	}
	for _, id := range all {
		for _, path := range []string{
			"/api/v1/items/" + id.GTIN + "/" + id.Serial + "/bundle",
			"/api/v1/items/" + id.GTIN + "/" + id.Serial,
			"/api/v1/items/" + id.GTIN + "/" + id.Serial + "/epcis",
			"/qr/01/" + id.GTIN + "/21/" + id.Serial + ".png",
			"/qr/01/" + id.GTIN + "/21/" + id.Serial + ".svg",
		} {
			same(t, mirror, origin, path, bytes.Equal)
		}
		mp, ok := same(t, mirror, origin, id.DigitalLink(""), func(a, b []byte) bool { return mainHTML(t, a) == mainHTML(t, b) })
		if !ok {
			t.Errorf("history page of %s: the mirror's content differs from the origin's", id)
		}
		if !bytes.Contains(mp, []byte(`data-testid="mirror-note"`)) || !bytes.Contains(mp, []byte(origin.url)) {
			t.Errorf("history page of %s on the mirror does not say whose log it mirrors", id)
		}
	}
	for _, path := range []string{"/keys", "/tile/0/000", "/tile/entries/000", "/api/v1/actors/maker"} {
		same(t, mirror, origin, path, bytes.Equal)
	}

	// Writes to the mirror are refused and change nothing.
	leaf := k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: mustItem(t, "TO-MIRROR"),
		Register: &provenance.Register{Product: "Tea", Lot: "L1"}})
	for _, path := range []string{"/api/v1/events", "/api/v1/events/batch"} {
		resp, err := http.Post(mirror.url+path, "text/plain", bytes.NewReader(leaf))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Error struct{ Code, Message string }
		}
		if resp.StatusCode != http.StatusForbidden || json.Unmarshal(b, &body) != nil || body.Error.Code != "read_only_mirror" ||
			!strings.Contains(body.Error.Message, origin.url) {
			t.Errorf("POST %s to the mirror: %d %s, want 403 read_only_mirror naming %s", path, resp.StatusCode, b, origin.url)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if _, got := mirror.get("/checkpoint"); !bytes.Equal(got, cp) {
		t.Errorf("the mirror's checkpoint changed after the refused writes")
	}
	if code, _ := mirror.get("/api/v1/items/09506000134352/TO-MIRROR"); code != http.StatusNotFound {
		t.Errorf("the item sent to the mirror: %d, want 404", code)
	}
	if code, _ := origin.get("/api/v1/items/09506000134352/TO-MIRROR"); code != http.StatusNotFound {
		t.Errorf("the item sent to the mirror reached the origin: %d", code)
	}
}

// TestMirrorOfARewrittenOrigin swaps the origin behind the mirror's URL
// for another history under the same keys, and on another mirror alters
// one entry bundle on the way: each mirror stops following, says so in
// its log, on /healthz, /metrics and its pages, keeps its last verified
// checkpoint and answers its pages.
func TestMirrorOfARewrittenOrigin(t *testing.T) {
	dirA := filepath.Join(t.TempDir(), "a")
	a, k := startOrigin(t, dirA)
	var mu sync.Mutex
	ids := custody(t, a, k, &mu, "A", 3)
	proxy := newOriginProxy(t, a)
	mirror, logs := startMirror(t, filepath.Join(t.TempDir(), "mirror"), proxy.srv.URL)
	good := catchUp(t, mirror, a)
	same(t, mirror, a, "/api/v1/items/09506000134352/A-2/bundle", bytes.Equal)

	// The operator restarts with the same keys and another history, longer.
	if err := a.shutdown(); err != nil {
		t.Fatal(err)
	}
	dirB := filepath.Join(t.TempDir(), "b")
	if err := os.MkdirAll(dirB, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"origin", "log.key", "operator.key"} {
		b, err := os.ReadFile(filepath.Join(dirA, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dirB, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, kb := startOrigin(t, dirB)
	custody(t, b, kb, &mu, "B", 5)
	if b.keys != a.keys {
		t.Fatalf("the rewritten origin has other keys")
	}
	proxy.point(t, b)

	waitStopped(t, mirror, logs, "fork")
	if _, got := mirror.get("/checkpoint"); !bytes.Equal(got, good) {
		t.Errorf("the mirror serves %q, want its last good checkpoint %q", got, good)
	}
	code, page := mirror.get(ids[0].DigitalLink(""))
	if code != http.StatusOK || !bytes.Contains(page, []byte(`data-testid="mirror-stopped"`)) {
		t.Errorf("history page on the stopped mirror: %d, or it does not say the mirror stopped", code)
	}
	if code, bundle := mirror.get("/api/v1/items/09506000134352/A-0/bundle"); code != http.StatusOK {
		t.Errorf("bundle on the stopped mirror: %d", code)
	} else if _, err := provenance.VerifyBundle(bundle, a.keys); err != nil {
		t.Errorf("bundle on the stopped mirror: %v", err)
	}
	if code, _ := mirror.get("/api/v1/items/09506000134352/B-0"); code != http.StatusNotFound {
		t.Errorf("an item of the rewritten history on the mirror: %d, want 404", code)
	}

	// One entry bundle altered on the way to a new mirror of B.
	alter := func(path string, body []byte) []byte {
		if path == "tile/entries/000.p/17" {
			body = bytes.Clone(body)
			body[len(body)-3] ^= 'x' ^ 'y'
		}
		return body
	}
	proxy.tamper.Store(&alter)
	other, otherLogs := startMirror(t, filepath.Join(t.TempDir(), "other"), proxy.srv.URL)
	waitStopped(t, other, otherLogs, "does not hash")
	if code, _ := other.get("/checkpoint"); code != http.StatusServiceUnavailable {
		t.Errorf("a mirror that verified nothing serves /checkpoint: %d, want 503", code)
	}
	if code, _ := other.get(ids[0].DigitalLink("")); code != http.StatusNotFound {
		t.Errorf("a mirror that verified nothing: history page %d, want 404", code)
	}
}

// waitStopped waits until the mirror says it stopped following, and
// checks that it said why in its log, on /healthz and on /metrics.
func waitStopped(t *testing.T, mirror *server, logs *syncBuffer, why string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, health := mirror.get("/healthz")
		if strings.Contains(string(health), "not following") {
			if !strings.Contains(string(health), why) {
				t.Errorf("/healthz: %s, want it to say %q", health, why)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror did not stop: /healthz says %s", health)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "mirror stopped following") || !strings.Contains(l, why) {
		t.Errorf("the mirror's log does not say at Error why it stopped (%q)", why)
	}
	if _, m := mirror.get("/metrics"); !strings.Contains(string(m), "provtrail_mirror_following 0") {
		t.Errorf("/metrics does not say the mirror stopped following")
	}
}

// TestMirrorRestarts stops a mirror and starts it again while the origin
// is down: it serves what it verified at once, from its data directory,
// and when the origin is back it fetches only what was added since.
func TestMirrorRestarts(t *testing.T) {
	origin, k := startOrigin(t, filepath.Join(t.TempDir(), "origin"))
	var mu sync.Mutex
	ids := custody(t, origin, k, &mu, "R", 100) // 302 entries: bundle 0 full, bundle 1 partial
	proxy := newOriginProxy(t, origin)
	dir := filepath.Join(t.TempDir(), "mirror")
	mirror, _ := startMirror(t, dir, proxy.srv.URL, "--base-url", origin.url)
	cp := catchUp(t, mirror, origin)
	same(t, mirror, origin, "/api/v1/items/09506000134352/R-99", bytes.Equal)
	_, page := mirror.get(ids[7].DigitalLink(""))
	if err := mirror.shutdown(); err != nil {
		t.Fatal(err)
	}

	proxy.down.Store(true)
	before := proxy.entries.Load()
	again, _ := startMirror(t, dir, proxy.srv.URL, "--base-url", origin.url)
	if _, got := again.get("/checkpoint"); !bytes.Equal(got, cp) {
		t.Fatalf("after the restart, with the origin down, the mirror serves %q, want %q", got, cp)
	}
	if code, p := again.get(ids[7].DigitalLink("")); code != http.StatusOK || mainHTML(t, p) != mainHTML(t, page) {
		t.Errorf("history page after the restart: %d, or its content changed", code)
	}
	if _, health := again.get("/healthz"); !strings.Contains(string(health), "following") || strings.Contains(string(health), "not following") {
		t.Errorf("an origin that is down does not stop the following: %s", health)
	}

	// Written to the origin directly, while the mirror cannot reach it.
	custody(t, origin, k, &mu, "S", 2)
	proxy.down.Store(false)
	catchUp(t, again, origin)
	// The six new entries need the partial bundle 1, wider now, and
	// nothing before it.
	if got := proxy.entries.Load() - before; got != 1 {
		t.Errorf("the restarted mirror fetched %d entry bundles, want 1", got)
	}
	for _, path := range []string{"/api/v1/items/09506000134352/S-1/bundle", "/api/v1/items/09506000134352/R-99/bundle"} {
		same(t, again, origin, path, bytes.Equal)
	}
}

// TestMirrorFlags checks what provd refuses with --mirror.
func TestMirrorFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--mirror", "ftp://x"}, "want an http:// or https:// URL"},
		{[]string{"--mirror", "http://x", "--demo"}, "--demo with --mirror"},
		{[]string{"--mirror", "http://x", "--webhook", "http://h", "--webhook-secret-file", "f"}, "--webhook with --mirror"},
		{[]string{"--mirror", "http://x", "--log", "trillian", "--trillian-addr", "h:1", "--trillian-tree", "1"}, "--log and --index with --mirror"},
		{[]string{"--mirror", "http://x", "--origin", "o"}, "--origin with --mirror"},
		{[]string{"--mirror-policy", "p"}, "--mirror-policy without --mirror"},
	} {
		err := run(t.Context(), append([]string{"--data", t.TempDir()}, tc.args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// No origin to pin keys from on the first start, or not the keys JSON.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }))
	defer garbage.Close()
	typo := t.TempDir()
	for _, tc := range []struct{ url, want string }{
		{down.URL, "pin the origin's keys on first use"},
		{garbage.URL, "not the keys JSON"},
	} {
		err := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", typo, "--mirror", tc.url}, func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("provd --mirror %s: %v, want %q", tc.url, err, tc.want)
		}
	}
	// A mirror's directory is not a log of its own, and the reverse.
	origin, _ := startOrigin(t, filepath.Join(t.TempDir(), "origin"))
	// The directory of a first start that failed is free for another URL.
	dir := typo
	m, _ := startMirror(t, dir, origin.url)
	if err := m.shutdown(); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", dir}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is a read-only mirror of "+origin.url) {
		t.Errorf("provd on a mirror's directory: %v", err)
	}
	err = run(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", origin.data, "--mirror", origin.url}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "holds a log of its own") {
		t.Errorf("provd --mirror on an origin's directory: %v", err)
	}
	// A policy naming other keys than those pinned.
	policy := filepath.Join(t.TempDir(), "other.policy")
	_, lk, _ := merkle.GenerateKey(origin.keys.Origin)
	other := provenance.FormatTrustPolicy(provenance.Trust{Origin: origin.keys.Origin, LogKey: lk, OperatorKey: origin.keys.OperatorKey})
	if err := os.WriteFile(policy, []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"--addr", "127.0.0.1:0", "--data", dir, "--mirror", origin.url, "--mirror-policy", policy}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "differs from the keys this mirror pinned") {
		t.Errorf("provd --mirror with another policy: %v", err)
	}
}

// TestMirrorOfAWitnessedOrigin mirrors a provd whose checkpoints a
// witness cosigns, with a policy that requires the cosignature: the
// mirror serves the origin's note with it, verbatim, and bundles byte for
// byte the origin's. A mirror whose policy requires another witness
// publishes nothing.
func TestMirrorOfAWitnessedOrigin(t *testing.T) {
	data := filepath.Join(t.TempDir(), "origin")
	n, err := datadir.Open(t.Context(), datadir.Config{Dir: data})
	if err != nil {
		t.Fatal(err)
	}
	trust := n.Trust
	n.Close()
	cosigner := func(name string) (note.Signer, string) {
		skey, vkey, err := note.GenerateKey(nil, name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := fnote.NewSignerForCosignatureV1(skey)
		if err != nil {
			t.Fatal(err)
		}
		cv, _ := fnote.VKeyToCosignatureV1(vkey)
		return s, cv
	}
	ws, wcv := cosigner("witness.test/w1")
	_, otherWitness := cosigner("witness.test/w2")
	lv, _ := note.NewVerifier(trust.LogKey)
	w, err := witness.New(witness.Config{Signer: ws, Logs: []note.Verifier{lv}, StatePath: filepath.Join(t.TempDir(), "w.state")})
	if err != nil {
		t.Fatal(err)
	}
	wsrv := httptest.NewServer(w)
	defer wsrv.Close()
	policyFile := filepath.Join(t.TempDir(), "witnesses.policy")
	if err := os.WriteFile(policyFile, fmt.Appendf(nil, "witness w1 %s %s\nquorum w1\n", wcv, wsrv.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	origin := startProvd(t, data, "--witness-policy", policyFile, "--poll-interval", "20ms")
	k := newKeys(t, data)
	origin.submit(k.enroll("maker", provenance.RoleManufacturer))
	item := mustItem(t, "WIT-M")
	origin.submit(k.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker", Item: item,
		Register: &provenance.Register{Product: "Witnessed tote"}}))

	mirrorPolicy := func(witnessKey string) string {
		path := filepath.Join(t.TempDir(), "mirror.policy")
		text := fmt.Sprintf("log %s\noperator %s\nwitness w1 %s\nquorum w1\n", trust.LogKey, trust.OperatorKey, witnessKey)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	mirror, _ := startMirror(t, filepath.Join(t.TempDir(), "mirror"), origin.url, "--mirror-policy", mirrorPolicy(wcv))
	cp := catchUp(t, mirror, origin)
	if !strings.Contains(string(cp), "— witness.test/w1 ") {
		t.Errorf("the mirror's checkpoint lacks the witness's cosignature:\n%s", cp)
	}
	same(t, mirror, origin, "/api/v1/items/"+item.GTIN+"/"+item.Serial+"/bundle", bytes.Equal)

	strict, _ := startMirror(t, filepath.Join(t.TempDir(), "strict"), origin.url, "--mirror-policy", mirrorPolicy(otherWitness))
	time.Sleep(200 * time.Millisecond)
	if code, _ := strict.get("/checkpoint"); code != http.StatusServiceUnavailable {
		t.Errorf("a mirror requiring another witness serves /checkpoint: %d, want 503", code)
	}
	if _, health := strict.get("/healthz"); strings.Contains(string(health), "not following") {
		t.Errorf("a missing cosignature stopped the following: %s", health)
	}
}
