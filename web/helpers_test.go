package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/web"
	"golang.org/x/mod/sumdb/note"
)

const baseURL = "https://id.example.com"

// memScans counts scans in memory.
type memScans struct {
	mu sync.Mutex
	n  map[provenance.ItemID]uint64
}

func (m *memScans) Scan(ctx context.Context, id provenance.ItemID) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.n == nil {
		m.n = map[provenance.ItemID]uint64{}
	}
	m.n[id]++
	return m.n[id], nil
}

// logWriter sends the server's log to t.Logf.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// A node is what cmd/internal/datadir opens (which this package may not
// import): a bbolt file holding the log and the index, and the Service.
type node struct {
	Log      *boltlog.Log
	Service  *provenance.Service
	Operator note.Signer
}

func openNode(t testing.TB) *node {
	t.Helper()
	ctx := context.Background()
	const origin = "id.example.com/log"
	logSigner, logKey := newSigner(t, origin)
	op, opKey := newSigner(t, provenance.OperatorID)
	db, err := boltlog.OpenDB(filepath.Join(t.TempDir(), "provtrail.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := boltlog.Open(ctx, boltlog.Config{DB: db, Origin: origin, Signer: logSigner})
	if err != nil {
		t.Fatal(err)
	}
	store, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := provenance.NewService(ctx, provenance.ServiceConfig{Log: l, Store: store,
		Trust: provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(svc.Close(), l.Close(), db.Close()); err != nil {
			t.Error(err)
		}
	})
	return &node{Log: l, Service: svc, Operator: op}
}

// An env is a real data directory (bbolt file, log, index, Service) on
// t.TempDir(), served by a web.Server over httptest, and the keys of the
// actors the test enrolled.
type env struct {
	t      testing.TB
	node   *node
	server *web.Server
	srv    *httptest.Server
	keys   map[string]note.Signer
	time   time.Time
}

func newEnv(t testing.TB, quiet bool) *env {
	t.Helper()
	node := openNode(t)
	logger := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	if quiet {
		logger = slog.New(slog.DiscardHandler)
	}
	s, err := web.New(web.Config{Service: node.Service, Log: node.Log, Scans: &memScans{}, BaseURL: baseURL, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, node: node, server: s, srv: srv, keys: map[string]note.Signer{},
		time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func newSigner(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// sign signs e with signer, filling in the time.
func (e *env) sign(ev provenance.Event, signer note.Signer) []byte {
	e.t.Helper()
	e.time = e.time.Add(time.Hour)
	if ev.Time.IsZero() {
		ev.Time = e.time
	}
	leaf, err := provenance.Sign(ev, signer)
	if err != nil {
		e.t.Fatal(err)
	}
	return leaf
}

// signNow sets the env's clock so that its next event is signed at the
// real time: after events a browser signed with its own clock, which the
// next event of the item may not precede.
func (e *env) signNow() {
	e.time = time.Now().UTC().Truncate(time.Second).Add(-time.Hour) // sign adds an hour
}

type receipt struct {
	Index      uint64 `json:"index"`
	LeafHash   string `json:"leaf_hash"`
	Checkpoint string `json:"checkpoint"`
	Proof      string `json:"proof"`
	Duplicate  bool   `json:"duplicate"`
}

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// post submits a leaf and returns the status and body.
func (e *env) post(leaf []byte) (int, []byte) {
	e.t.Helper()
	resp, err := http.Post(e.srv.URL+"/api/v1/events", "text/plain; charset=utf-8", strings.NewReader(string(leaf)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// ok submits a leaf that must be accepted.
func (e *env) ok(leaf []byte) receipt {
	e.t.Helper()
	status, body := e.post(leaf)
	if status != http.StatusCreated {
		e.t.Fatalf("POST event: %d %s\n%s", status, body, leaf)
	}
	var r receipt
	if err := json.Unmarshal(body, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) enroll(id string, role provenance.Role, name string) {
	e.t.Helper()
	signer, vkey := newSigner(e.t, id)
	e.keys[id] = signer
	e.ok(e.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: id, Role: role, Name: name, Key: vkey}}, e.node.Operator))
}

func (e *env) last(id provenance.ItemID) merkle.Hash {
	e.t.Helper()
	v, err := e.node.Service.Item(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return v.State.Last
}

func (e *env) registerLeaf(by string, id provenance.ItemID, product, place string) []byte {
	return e.sign(provenance.Event{Kind: provenance.KindRegister, Actor: by, Item: id, Place: place,
		Register: &provenance.Register{Product: product, Lot: "L1"}}, e.keys[by])
}

func (e *env) handoffLeaf(by string, id provenance.ItemID, h provenance.Handoff) []byte {
	return e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: by, Item: id, Prev: e.last(id), Handoff: &h}, e.keys[by])
}

func (e *env) receiveLeaf(by string, id provenance.ItemID, place string) []byte {
	return e.sign(provenance.Event{Kind: provenance.KindReceive, Actor: by, Item: id, Prev: e.last(id), Place: place,
		Receive: &provenance.Receive{By: by}}, e.keys[by])
}

// get fetches path (not following redirects) with optional headers.
func (e *env) get(path string, hdr ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func (e *env) checkpointSize() uint64 {
	e.t.Helper()
	cp, err := e.node.Log.Checkpoint(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return cp.Size
}

func doc(t testing.TB, body []byte) *goquery.Document {
	t.Helper()
	d, err := goquery.NewDocumentFromReader(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustItem(t testing.TB, gtin, serial string) provenance.ItemID {
	t.Helper()
	id, err := provenance.NewItemID(gtin, serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// scenario enrolls a manufacturer and a courier and registers an item,
// hands it to the courier, who receives it: three item events.
func scenario(e *env, id provenance.ItemID, product string) {
	e.t.Helper()
	if _, ok := e.keys["maker"]; !ok {
		e.enroll("maker", provenance.RoleManufacturer, "Maker & Co <b>")
		e.enroll("courier", provenance.RoleCourier, "Fast Courier")
	}
	e.ok(e.registerLeaf("maker", id, product, "Shenzhen"))
	e.ok(e.handoffLeaf("maker", id, provenance.Handoff{To: "courier"}))
	e.ok(e.receiveLeaf("courier", id, "Hong Kong"))
}
