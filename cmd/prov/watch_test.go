package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/witness"
	"github.com/provtrail/provtrail/provenance"
)

// TestMonitor follows a served log as it grows, then is shown a fork: a
// log under the same keys with another history.
func TestMonitor(t *testing.T) {
	w := newWorld(t)
	// A twin data directory with the same keys and origin, to fork from.
	twin := &world{t: t, dir: t.TempDir()}
	twin.data = filepath.Join(twin.dir, "data")
	if err := os.MkdirAll(twin.data, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"origin", "log.key", "operator.key"} {
		writeFile(t, filepath.Join(twin.data, f), readFile(t, filepath.Join(w.data, f)))
		os.Chmod(filepath.Join(twin.data, f), 0o600)
	}
	w.enroll("acme", "manufacturer", "Acme")
	twin.enroll("evil", "manufacturer", "Evil Twin")
	twin.enroll("evil-2", "courier", "Evil Courier")

	url := w.serve()
	policy := w.path("keys.policy")
	prov(t, "keys", "--server", url, "--out", policy).ok(t)
	state := w.path("monitor.state")
	mon := func(url string) result {
		return prov(t, "monitor", "--url", url, "--policy", policy, "--state", state)
	}
	if r := mon(url).ok(t); !strings.Contains(r.stdout, "first check") {
		t.Fatalf("first check: %q", r.stdout)
	}
	// Grow the served log through its API.
	_, vkey := w.keygen("swift")
	prov(t, "enroll", "--server", url, "--operator-key", filepath.Join(w.data, "operator.key"),
		"--id", "swift", "--role", "courier", "--name", "Swift", "--key", vkey).ok(t)
	if r := mon(url).ok(t); !strings.Contains(r.stdout, "grew from 1 to 2, consistently") {
		t.Fatalf("growth: %q", r.stdout)
	}
	if r := mon(url).ok(t); !strings.Contains(r.stdout, "unchanged at size 2") {
		t.Fatalf("no growth: %q", r.stdout)
	}
	// The twin holds another history of the same size: a fork.
	mon(twin.serve()).fails(t, exitFail, "fork")
	// Nonsense arguments.
	prov(t, "monitor", "--url", url).fails(t, exitUsage, "--policy")
}

// TestWitness runs prov witness and has it cosign a served log's
// checkpoints; a policy requiring that witness then accepts them.
func TestWitness(t *testing.T) {
	w := newWorld(t)
	w.enroll("acme", "manufacturer", "Acme")
	n, err := datadir.Open(t.Context(), datadir.Config{Dir: w.data})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	policy := w.path("keys.policy")
	writeFile(t, policy, []byte(provenance.FormatTrustPolicy(n.Trust)))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"witness", "--key", w.path("witness.key"), "--name", "witness.test/w1",
			"--policy", policy, "--state", w.path("witness.state"), "--addr", "127.0.0.1:0"}, strings.NewReader(""), out, &syncBuffer{})
	}()
	var addr, cosigKey string
	re := regexp.MustCompile(`^witness (\S+) listening on (\S+)`)
	for start := time.Now(); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			cosigKey, addr = m[1], m[2]
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("witness did not start: %q", out.String())
		}
	}
	cp, err := n.Log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := witness.Cosign(t.Context(), http.DefaultClient, "http://"+addr, cp, 0,
		func(ctx context.Context, old uint64) ([]merkle.Hash, error) {
			return n.Log.ConsistencyProof(ctx, old, cp.Size)
		})
	if err != nil {
		t.Fatal(err)
	}
	withWitness, err := merkle.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w1 %s\nquorum w1\n", n.Trust.LogKey, cosigKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withWitness.Verify(cosigned); err != nil {
		t.Fatalf("the witness's cosignature does not meet a policy requiring it: %v", err)
	}
	if _, err := withWitness.Verify(cp.Note); err == nil {
		t.Fatal("a checkpoint without the cosignature met the quorum")
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("witness exited %d", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
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
