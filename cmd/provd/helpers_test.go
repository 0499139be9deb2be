package main

import (
	"bytes"
	"context"
	"encoding/json"

	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// syncBuffer is a bytes.Buffer safe for the server and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A server is provd running in-process.
type server struct {
	t      testing.TB
	url    string
	data   string
	stdout *syncBuffer
	stop   context.CancelFunc
	done   chan error
	keys   provenance.Trust // as /keys said at start
	pid    int              // a child provd's process ID (startChild)
}

// logWriter sends provd's log lines to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var listening = regexp.MustCompile(`provd listening on (http://\S+)`)

// startProvd runs provd on data with args, on a free loopback port, and
// waits until /healthz answers.
func startProvd(t testing.TB, data string, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, data: data, stdout: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	args = append([]string{"--addr", "127.0.0.1:0", "--data", data, "--log-format", "text"}, args...)
	go func() { s.done <- run(ctx, args, func(string) string { return "" }, s.stdout, logWriter{t}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Error("provd did not stop")
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
			t.Fatalf("provd stopped before listening: %v\n%s", err, s.stdout)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("provd did not start:\n%s", s.stdout)
		}
	}
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.keys = s.trust()
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz does not answer 200: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// shutdown stops provd as SIGTERM would and returns what run returned.
func (s *server) shutdown() error {
	s.t.Helper()
	s.stop()
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		return err
	case <-time.After(20 * time.Second):
		s.t.Fatal("provd did not stop within 20s")
		return nil
	}
}

// get fetches path and returns the status and body.
func (s *server) get(path string) (int, []byte) {
	s.t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// trust reads /keys.
func (s *server) trust() provenance.Trust {
	s.t.Helper()
	code, b := s.get("/keys")
	var k struct {
		Origin      string `json:"origin"`
		LogKey      string `json:"log_key"`
		OperatorKey string `json:"operator_key"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &k) != nil {
		s.t.Fatalf("/keys: %d %s", code, b)
	}
	return provenance.Trust{Origin: k.Origin, LogKey: k.LogKey, OperatorKey: k.OperatorKey}
}

// receipt is the JSON answer to POST /api/v1/events.
type receipt struct {
	Index      uint64 `json:"index"`
	LeafHash   string `json:"leaf_hash"`
	Checkpoint string `json:"checkpoint"`
	Proof      string `json:"proof"`
	Duplicate  bool   `json:"duplicate"`
}

// submit POSTs a signed event and checks it is accepted with a receipt
// that verifies offline against the log key.
func (s *server) submit(leaf []byte) receipt {
	s.t.Helper()
	resp, err := http.Post(s.url+"/api/v1/events", "text/plain", bytes.NewReader(leaf))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	return s.checkReceipt(resp, leaf)
}

func (s *server) checkReceipt(resp *http.Response, leaf []byte) receipt {
	s.t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		s.t.Fatalf("POST /api/v1/events: %s %s\n%s", resp.Status, b, leaf)
	}
	var r receipt
	if err := json.Unmarshal(b, &r); err != nil {
		s.t.Fatalf("receipt %s: %v", b, err)
	}
	trust := s.keys
	v, err := note.NewVerifier(trust.LogKey)
	if err != nil {
		s.t.Fatal(err)
	}
	cp, index, err := merkle.VerifyProof([]byte(r.Proof), leaf, trust.Origin, v)
	if err != nil || index != r.Index || r.LeafHash != merkle.LeafHash(leaf).String() || string(cp.Note) != r.Checkpoint {
		s.t.Fatalf("the receipt does not verify offline: index %d (receipt %d), %v", index, r.Index, err)
	}
	return r
}

// keys makes signers for actors in tests.
type keys struct {
	t       testing.TB
	signers map[string]note.Signer
	vkeys   map[string]string
}

func newKeys(t testing.TB, data string) *keys {
	t.Helper()
	op, opKey, err := merkle.LoadKeyFile(filepath.Join(data, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &keys{t: t, signers: map[string]note.Signer{provenance.OperatorID: op}, vkeys: map[string]string{provenance.OperatorID: opKey}}
}

func (k *keys) signer(id string) note.Signer {
	k.t.Helper()
	if s, ok := k.signers[id]; ok {
		return s
	}
	skey, vkey, err := merkle.GenerateKey(id)
	if err != nil {
		k.t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		k.t.Fatal(err)
	}
	k.signers[id], k.vkeys[id] = s, vkey
	return s
}

func (k *keys) sign(e provenance.Event) []byte {
	k.t.Helper()
	if e.Time.IsZero() {
		e.Time = time.Now().UTC().Truncate(time.Second)
	}
	leaf, err := provenance.Sign(e, k.signer(e.Actor))
	if err != nil {
		k.t.Fatal(err)
	}
	return leaf
}

func (k *keys) enroll(id string, role provenance.Role) []byte {
	k.t.Helper()
	k.signer(id)
	return k.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: id, Role: role, Name: "Test " + id, Key: k.vkeys[id]}})
}

func mustItem(t testing.TB, serial string) provenance.ItemID {
	t.Helper()
	id, err := provenance.NewItemID("9506000134352", serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func writeSecret(t *testing.T, secret string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}
