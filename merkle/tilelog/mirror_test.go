package tilelog_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/tilelog"
	"golang.org/x/mod/sumdb/note"
)

const origin = "tilelog.test/log"

// An originServer answers the C2SP read API from a log. tamper, if set,
// may change any answer: it gets the path and the body the log gave, and
// returns the status and body to send.
type originServer struct {
	log      atomic.Pointer[boltlog.Log]
	tamper   atomic.Pointer[func(path string, body []byte) (int, []byte)]
	requests sync.Map // path -> *atomic.Int64
}

func (s *originServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	n, _ := s.requests.LoadOrStore(path, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	l := s.log.Load()
	var b []byte
	var err error
	if path == "checkpoint" {
		var cp merkle.Checkpoint
		cp, err = l.Checkpoint(r.Context())
		b = cp.Note
	} else {
		var tp merkle.TilePath
		if tp, err = merkle.ParseTilePath(path); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if tp.Level < 0 {
			b, err = l.EntryBundle(r.Context(), tp.Index, tp.Width)
		} else {
			b, err = l.Tile(r.Context(), uint8(tp.Level), tp.Index, tp.Width)
		}
	}
	status := http.StatusOK
	if err != nil {
		status, b = http.StatusNotFound, []byte(err.Error())
	}
	if f := s.tamper.Load(); f != nil {
		status, b = (*f)(path, b)
	}
	w.WriteHeader(status)
	w.Write(b)
}

func (s *originServer) setTamper(f func(path string, body []byte) (int, []byte)) {
	if f == nil {
		s.tamper.Store(nil)
		return
	}
	s.tamper.Store(&f)
}

// entryFetches counts the entry bundles fetched so far.
func (s *originServer) entryFetches() int64 {
	var total int64
	s.requests.Range(func(k, v any) bool {
		if strings.HasPrefix(k.(string), "tile/entries/") {
			total += v.(*atomic.Int64).Load()
		}
		return true
	})
	return total
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

// logWriter sends a logger's lines to t.Logf.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// fixture is an origin log behind an HTTP server, and what a mirror of it
// needs.
type fixture struct {
	skey, vkey string
	real       *boltlog.Log
	srv        *originServer
	url        string
	dir        string // the mirror's directory
	// closeMirror closes the mirror that open opened, its local storage
	// and its database.
	closeMirror func()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{skey: skey, vkey: vkey, real: newLog(t, skey), srv: &originServer{}, dir: t.TempDir()}
	f.srv.log.Store(f.real)
	hs := httptest.NewServer(f.srv)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

// open opens a mirror of the fixture's origin on its directory, with
// local storage that a throwaway key signs.
func (f *fixture) open(t *testing.T) *tilelog.Mirror {
	t.Helper()
	throwaway, _, err := merkle.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(throwaway)
	db, err := boltlog.OpenDB(filepath.Join(f.dir, "local.db"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tilelog.NewClient(tilelog.ClientConfig{URL: f.url, LogKey: f.vkey})
	if err != nil {
		t.Fatal(err)
	}
	m, err := tilelog.Open(t.Context(), tilelog.Config{Client: c, Local: local, StatePath: filepath.Join(f.dir, "checkpoint"),
		Logger: slog.New(slog.NewTextHandler(logWriter{t}, nil)), Interval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond})
	if err != nil {
		local.Close()
		db.Close()
		t.Fatal(err)
	}
	var once sync.Once
	closeAll := func() { once.Do(func() { m.Close(); local.Close(); db.Close() }) }
	t.Cleanup(closeAll)
	f.closeMirror = closeAll
	return m
}

// waitFor waits until the mirror's status satisfies ok.
func waitFor(t *testing.T, m *tilelog.Mirror, what string, ok func(tilelog.Status) bool) tilelog.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.Status()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: status %+v", what, st)
		}
		m.Sync()
		time.Sleep(5 * time.Millisecond)
	}
}

func atSize(n uint64) func(tilelog.Status) bool {
	return func(st tilelog.Status) bool { return st.Checkpoint.Note != nil && st.Checkpoint.Size == n }
}

func TestMirrorFollows(t *testing.T) {
	f := newFixture(t)
	m := f.open(t)
	ctx := t.Context()
	for _, n := range []int{0, 1, 255, 2, 700, 4100} {
		want := grow(t, f.real, fmt.Sprint("batch", n), n)
		if n == 0 {
			want, _ = f.real.Checkpoint(ctx)
		}
		st := waitFor(t, m, fmt.Sprintf("size %d", want.Size), atSize(want.Size))
		if !bytes.Equal(st.Checkpoint.Note, want.Note) || st.Stopped != nil {
			t.Fatalf("status %+v, want the origin's note %q", st, want.Note)
		}
	}
	cp, err := m.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// What the mirror serves is the origin's, byte for byte.
	for _, tc := range []struct {
		level uint8
		index uint64
		width int
	}{{0, 0, 256}, {0, 19, int(cp.Size % 256)}, {1, 0, int(cp.Size / 256)}} {
		got, err := m.Tile(ctx, tc.level, tc.index, tc.width)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := f.real.Tile(ctx, tc.level, tc.index, tc.width)
		if !bytes.Equal(got, want) {
			t.Errorf("tile %+v differs from the origin's", tc)
		}
	}
	got, err := m.EntryBundle(ctx, 3, 256)
	if want, _ := f.real.EntryBundle(ctx, 3, 256); err != nil || !bytes.Equal(got, want) {
		t.Errorf("entry bundle 3: %v, or differs from the origin's", err)
	}
	p, err := m.InclusionProof(ctx, 1000, cp.Size)
	if want, _ := f.real.InclusionProof(ctx, 1000, cp.Size); err != nil || fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("inclusion proof: %v, or differs from the origin's", err)
	}
	// Nothing past the published checkpoint, and no appends.
	if _, err := m.Leaves(ctx, 0, cp.Size+1); !errors.Is(err, merkle.ErrOutOfRange) {
		t.Errorf("leaves past the checkpoint: %v, want ErrOutOfRange", err)
	}
	if _, err := m.Tile(ctx, 0, cp.Size/256+1, 1); !errors.Is(err, merkle.ErrOutOfRange) {
		t.Errorf("tile past the checkpoint: %v, want ErrOutOfRange", err)
	}
	if _, err := m.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, merkle.ErrReadOnly) || !strings.Contains(err.Error(), f.url) {
		t.Errorf("append: %v, want ErrReadOnly naming %s", err, f.url)
	}
}

// TestMirrorStopsOnContradiction shows the origin a forged history in
// each way a mirror must catch, each on a mirror that verified the honest
// log first.
func TestMirrorStopsOnContradiction(t *testing.T) {
	// flip changes the byte at from the end of the resource target.
	flip := func(target string, at int) func(string, []byte) (int, []byte) {
		return func(path string, b []byte) (int, []byte) {
			if path == target && len(b) > at {
				b = bytes.Clone(b)
				b[len(b)-1-at] ^= 1
			}
			return http.StatusOK, b
		}
	}
	tests := []struct {
		name string
		// forge makes the origin lie, given its honest log; it may
		// replace the server's log.
		forge func(t *testing.T, f *fixture)
		want  string
	}{
		{"another history under the same key", func(t *testing.T, f *fixture) {
			fork := newLog(t, f.skey)
			grow(t, fork, "a", 250)
			grow(t, fork, "not a", 450)
			f.srv.log.Store(fork)
		}, "fork"},
		{"the same size with another root", func(t *testing.T, f *fixture) {
			fork := newLog(t, f.skey)
			grow(t, fork, "not a", 300)
			f.srv.log.Store(fork)
		}, "fork"},
		{"a checkpoint that shrinks", func(t *testing.T, f *fixture) {
			small := newLog(t, f.skey)
			grow(t, small, "a", 200)
			f.srv.log.Store(small)
		}, "shrank"},
		{"an altered entry bundle", func(t *testing.T, f *fixture) {
			f.srv.setTamper(flip("tile/entries/001", 1))
			grow(t, f.real, "b", 300)
		}, "does not hash"},
		{"an altered tile", func(t *testing.T, f *fixture) {
			f.srv.setTamper(flip("tile/0/001", 40))
			grow(t, f.real, "b", 300)
		}, "inconsistent tile"},
		{"a bad signature by the log key", func(t *testing.T, f *fixture) {
			f.srv.setTamper(func(path string, b []byte) (int, []byte) {
				if path == "checkpoint" {
					b = bytes.Clone(b)
					i := bytes.LastIndexByte(b[:len(b)-1], ' ') + 20
					b[i] ^= 1 // in the signature's base64, past the key hash
				}
				return http.StatusOK, b
			})
			grow(t, f.real, "b", 1)
		}, "does not verify"},
		{"another log key", func(t *testing.T, f *fixture) {
			stranger, _, _ := merkle.GenerateKey(origin)
			f.srv.log.Store(newLog(t, stranger))
			grow(t, f.srv.log.Load(), "a", 400)
		}, "not signed by the pinned log key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			m := f.open(t)
			good := grow(t, f.real, "a", 300)
			waitFor(t, m, "the honest log", atSize(good.Size))
			tt.forge(t, f)
			st := waitFor(t, m, "the mirror to stop", func(st tilelog.Status) bool { return st.Stopped != nil })
			if !errors.Is(st.Stopped, tilelog.ErrInconsistent) || !strings.Contains(st.Stopped.Error(), tt.want) {
				t.Errorf("stopped with %v, want ErrInconsistent saying %q", st.Stopped, tt.want)
			}
			if !bytes.Equal(st.Checkpoint.Note, good.Note) {
				t.Errorf("published %d, want the last good checkpoint %d", st.Checkpoint.Size, good.Size)
			}
			// It keeps serving the last good state, and no more.
			if leaves, err := m.Leaves(t.Context(), 0, good.Size); err != nil || string(leaves[299]) != "a 299" {
				t.Errorf("leaves after the stop: %v", err)
			}
			if _, err := m.Leaves(t.Context(), good.Size, good.Size+1); !errors.Is(err, merkle.ErrOutOfRange) {
				t.Errorf("a leaf past the last good checkpoint: %v", err)
			}
			// Even when the origin turns honest again: a restart is needed.
			f.srv.setTamper(nil)
			f.srv.log.Store(f.real)
			time.Sleep(50 * time.Millisecond)
			if st := m.Status(); st.Checkpoint.Size != good.Size || st.Stopped == nil {
				t.Errorf("after the stop: %+v", st)
			}
		})
	}
}

// TestMirrorRetriesBadAnswers gives the mirror answers that are not well
// formed: it retries, says why, and catches up once the origin answers.
func TestMirrorRetriesBadAnswers(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(path string, b []byte) (int, []byte)
		want   string
	}{
		{"5xx", func(path string, b []byte) (int, []byte) { return http.StatusBadGateway, []byte("bad gateway") }, "502"},
		{"garbage checkpoint", func(path string, b []byte) (int, []byte) {
			if path == "checkpoint" {
				return http.StatusOK, []byte("<html>hello</html>")
			}
			return http.StatusOK, b
		}, "not a signed note"},
		{"truncated tile", func(path string, b []byte) (int, []byte) {
			if strings.HasPrefix(path, "tile/0/") {
				return http.StatusOK, b[:len(b)-5]
			}
			return http.StatusOK, b
		}, "hashes of 32"},
		{"truncated entry bundle", func(path string, b []byte) (int, []byte) {
			if strings.HasPrefix(path, "tile/entries/") {
				return http.StatusOK, b[:len(b)-3]
			}
			return http.StatusOK, b
		}, "announced"},
		{"no tiles", func(path string, b []byte) (int, []byte) {
			if strings.HasPrefix(path, "tile/") {
				return http.StatusNotFound, []byte("this log does not serve tiles")
			}
			return http.StatusOK, b
		}, "serves no tiles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.srv.setTamper(tt.tamper)
			m := f.open(t)
			cp := grow(t, f.real, "a", 300)
			st := waitFor(t, m, "an error", func(st tilelog.Status) bool { return st.LastErr != nil })
			if !errors.Is(st.LastErr, tilelog.ErrUnavailable) || !strings.Contains(st.LastErr.Error(), tt.want) || st.Stopped != nil {
				t.Errorf("error %v (stopped: %v), want ErrUnavailable saying %q", st.LastErr, st.Stopped, tt.want)
			}
			f.srv.setTamper(nil)
			waitFor(t, m, "the catch-up", atSize(cp.Size))
		})
	}
}

// TestMirrorResumes restarts a mirror: it publishes its kept checkpoint
// at once and fetches only the entries added since.
func TestMirrorResumes(t *testing.T) {
	f := newFixture(t)
	m := f.open(t)
	cp := grow(t, f.real, "a", 1000)
	waitFor(t, m, "the first run", atSize(cp.Size))
	f.closeMirror()
	before := f.srv.entryFetches()

	f.srv.setTamper(func(path string, b []byte) (int, []byte) { return http.StatusServiceUnavailable, nil })
	m = f.open(t)
	if got, err := m.Checkpoint(t.Context()); err != nil || !bytes.Equal(got.Note, cp.Note) {
		t.Fatalf("after the restart, with the origin down: %v, %v", got.Size, err)
	}
	f.srv.setTamper(nil)
	cp = grow(t, f.real, "b", 10)
	waitFor(t, m, "the second run", atSize(cp.Size))
	// 1000 leaves are entry bundles 0 to 3 (the last partial); the ten
	// new ones need bundle 3 (wider now) and nothing before it.
	if got := f.srv.entryFetches() - before; got != 1 {
		t.Errorf("fetched %d entry bundles after the restart, want 1", got)
	}
}

func TestMirrorRefusesAStateItCannotVerify(t *testing.T) {
	f := newFixture(t)
	m := f.open(t)
	cp := grow(t, f.real, "a", 10)
	waitFor(t, m, "the first run", atSize(cp.Size))
	f.closeMirror()
	// Another key: the kept checkpoint is not the pinned log's.
	_, other, _ := merkle.GenerateKey(origin)
	c, _ := tilelog.NewClient(tilelog.ClientConfig{URL: f.url, LogKey: other})
	throwaway, _, _ := merkle.GenerateKey(origin)
	s, _ := note.NewSigner(throwaway)
	db, err := boltlog.OpenDB(filepath.Join(f.dir, "local.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	local, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	_, err = tilelog.Open(t.Context(), tilelog.Config{Client: c, Local: local, StatePath: filepath.Join(f.dir, "checkpoint")})
	if !errors.Is(err, tilelog.ErrInconsistent) {
		t.Fatalf("open with another key: %v, want ErrInconsistent", err)
	}
}

// TestMirrorAfterACrash opens a mirror whose local copy holds entries past
// its kept checkpoint, as a crash between appending verified entries and
// keeping their checkpoint leaves it: the mirror publishes the kept
// checkpoint, and the next one once the local root matches it, fetching
// nothing it holds. Entries past the checkpoint that are not the origin's
// stop the following instead.
func TestMirrorAfterACrash(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra func(origin [][]byte) [][]byte // what the crash left in the copy
		stops bool
	}{
		{"the origin's entries", func(origin [][]byte) [][]byte { return origin }, false},
		{"other entries", func(origin [][]byte) [][]byte {
			return [][]byte{[]byte("not the origin's"), []byte("nor this")}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m := f.open(t)
			cp := grow(t, f.real, "a", 300)
			waitFor(t, m, "the first run", atSize(cp.Size))
			f.closeMirror()

			grow(t, f.real, "b", 100)
			next, err := f.real.Leaves(t.Context(), 300, 400)
			if err != nil {
				t.Fatal(err)
			}
			throwaway, _, _ := merkle.GenerateKey(origin)
			s, _ := note.NewSigner(throwaway)
			db, err := boltlog.OpenDB(filepath.Join(f.dir, "local.db"))
			if err != nil {
				t.Fatal(err)
			}
			local, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := local.Append(t.Context(), tc.extra(next)); err != nil {
				t.Fatal(err)
			}
			local.Close()
			db.Close()

			before := f.srv.entryFetches()
			m = f.open(t)
			if got, _ := m.Checkpoint(t.Context()); got.Size != 300 {
				t.Fatalf("after the crash: size %d, want the kept 300", got.Size)
			}
			if tc.stops {
				st := waitFor(t, m, "the stop", func(st tilelog.Status) bool { return st.Stopped != nil })
				if !errors.Is(st.Stopped, tilelog.ErrInconsistent) || !strings.Contains(st.Stopped.Error(), "not the origin's") || st.Checkpoint.Size != 300 {
					t.Errorf("stopped with %v at %d, want ErrInconsistent at 300", st.Stopped, st.Checkpoint.Size)
				}
				if got := f.srv.entryFetches() - before; got != 0 {
					t.Errorf("fetched %d entry bundles to append after entries that are not the origin's", got)
				}
				return
			}
			waitFor(t, m, "the next checkpoint", atSize(400))
			if got := f.srv.entryFetches() - before; got != 0 {
				t.Errorf("fetched %d entry bundles the copy held already", got)
			}
		})
	}
}
