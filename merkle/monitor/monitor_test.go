package monitor

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"golang.org/x/mod/sumdb/note"
)

const origin = "monitor.test/log"

// A server answers the C2SP read API from a log, or, when forked is set,
// the checkpoint of another log under the same key.
type server struct {
	log    atomic.Pointer[boltlog.Log]
	forked atomic.Pointer[[]byte]
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l := s.log.Load()
	path := strings.TrimPrefix(r.URL.Path, "/")
	if path == "checkpoint" {
		if f := s.forked.Load(); f != nil {
			w.Write(*f)
			return
		}
		cp, err := l.Checkpoint(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(cp.Note)
		return
	}
	tp, err := merkle.ParseTilePath(path)
	if err != nil || tp.Level < 0 {
		http.Error(w, "bad tile path", 400)
		return
	}
	b, err := l.Tile(r.Context(), uint8(tp.Level), tp.Index, tp.Width)
	if err != nil {
		http.Error(w, err.Error(), 404)
		return
	}
	w.Write(b)
}

func newLog(t *testing.T, skey string) *boltlog.Log {
	t.Helper()
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	db, err := boltlog.OpenDB(filepath.Join(t.TempDir(), "log.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); db.Close() })
	return l
}

func grow(t *testing.T, l *boltlog.Log, tag string, n int) merkle.Checkpoint {
	t.Helper()
	var leaves [][]byte
	for i := range n {
		leaves = append(leaves, fmt.Appendf(nil, "%s %d", tag, i))
	}
	if _, err := l.Append(t.Context(), leaves); err != nil {
		t.Fatal(err)
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestMonitorFollowsAndCatchesForks(t *testing.T) {
	skey, vkey, err := merkle.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	policy, err := merkle.ParsePolicy([]byte("log " + vkey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	real := newLog(t, skey)
	srv := &server{}
	srv.log.Store(real)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	cfg := Config{URL: hs.URL, Policy: policy, StatePath: filepath.Join(t.TempDir(), "monitor.json"), Client: hs.Client()}

	grow(t, real, "a", 300)
	if _, err := Check(t.Context(), cfg); err != nil {
		t.Fatalf("first check: %v", err)
	}
	grow(t, real, "b", 700)
	if res, err := Check(t.Context(), cfg); err != nil || res.Old.Size != 300 || res.New.Size != 1000 {
		t.Fatalf("growth from 300 to 1000: %+v %v", res, err)
	}

	// A fork: the operator's key signs another history, shown to us.
	fork := newLog(t, skey)
	grow(t, fork, "a", 300)
	grow(t, fork, "not b", 800)
	srv.log.Store(fork)
	if _, err := Check(t.Context(), cfg); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a larger tree that does not extend ours: got %v, want ErrInconsistent", err)
	}
	// Two checkpoints of the same size with different roots.
	other, err := merkle.SignCheckpoint(mustSigner(t, skey), origin, 1000, merkle.LeafHash([]byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	srv.forked.Store(&other.Note)
	if _, err := Check(t.Context(), cfg); !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), "fork") {
		t.Fatalf("same size, other root: got %v", err)
	}
	// A rollback to an older, smaller checkpoint.
	small, _ := merkle.SignCheckpoint(mustSigner(t, skey), origin, 10, merkle.LeafHash([]byte("y")))
	srv.forked.Store(&small.Note)
	if _, err := Check(t.Context(), cfg); !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), "rollback") {
		t.Fatalf("rollback: got %v", err)
	}
	// A checkpoint signed by another key.
	stranger, _, _ := merkle.GenerateKey(origin)
	bad, _ := merkle.SignCheckpoint(mustSigner(t, stranger), origin, 2000, merkle.LeafHash([]byte("z")))
	srv.forked.Store(&bad.Note)
	if _, err := Check(t.Context(), cfg); !errors.Is(err, merkle.ErrPolicy) {
		t.Fatalf("another key: got %v, want ErrPolicy", err)
	}
	// Back to the honest log: it still verifies from the state kept.
	srv.forked.Store(nil)
	srv.log.Store(real)
	grow(t, real, "c", 5)
	if res, err := Check(t.Context(), cfg); err != nil || res.Old.Size != 1000 {
		t.Fatalf("honest log again: %+v %v", res, err)
	}
}

func mustSigner(t *testing.T, skey string) note.Signer {
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
