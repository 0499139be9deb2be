//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/monitor"
	"github.com/provtrail/provtrail/provenance"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// The data directory starts on a filesystem of smallDisk bytes and is
// grown to bigDisk: small enough to fill in a few seconds of load, big
// enough for the load after.
const (
	smallDisk = 3 << 20
	bigDisk   = 64 << 20
)

// TestDiskFull fills provd's disk under a signed write load (enrollments,
// registrations, handoffs and receives from 4 workers) until its writes
// fail, checks how it answers, then makes room: once while it runs
// ("grow"), and once across restarts, the first on the full disk
// ("restart"). See docs/abuse.md, "Disk full".
//
// While the disk is full every refused POST is a JSON error, 503
// storage_full with a Retry-After (never a 500),
// and stored nothing: POSTed again later, it is a 201, not a 200 duplicate.
// provd keeps running and serves /healthz, /checkpoint, history pages,
// item JSON and bundles (verified offline), and it starts on the full
// disk. After room is made, writes succeed again; every acknowledged event
// is at its receipt's index with its leaf hash, in the tree, in its item's
// history and in bundles; every checkpoint provd served (in receipts and
// at /checkpoint) is consistent with the final tree; and bbolt's
// consistency check passes on the data file whenever provd is stopped.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a disk under load")
	}
	grow := func(t *testing.T, d *tinyDisk) {
		s := d.start(t)
		l := newDiskLoad(t, s, d)
		l.fill(s)
		l.checkFull(s)

		d.grow(t, s, bigDisk)
		l.resume(s, 30)
		l.verify(s)
		if err := s.terminate(); err != nil {
			t.Errorf("provd stopped with %v after the disk was grown", err)
		}
		checkDB(t, d.dir)

		s = d.start(t)
		l.verify(s)
		l.monitor(s)
	}
	t.Run("grow", func(t *testing.T) {
		t.Parallel()
		grow(t, newTinyDisk(t, smallDisk))
	})
	// The same under a file size limit, where a tmpfs could be mounted
	// too: bbolt reports a failure to grow its file past the limit as text,
	// without the errno, and provd must still answer 503 storage_full.
	t.Run("limit", func(t *testing.T) {
		t.Parallel()
		grow(t, newLimitedDisk(t, smallDisk))
	})
	t.Run("restart", func(t *testing.T) {
		t.Parallel()
		d := newTinyDisk(t, smallDisk)
		s := d.start(t)
		l := newDiskLoad(t, s, d)
		l.fill(s)
		l.checkFull(s)
		// A graceful stop on the full disk: the last index save may
		// fail, which the next start replays from the log.
		t.Logf("provd stopped on the full disk: %v", s.terminate())
		checkDB(t, d.dir)

		s = d.start(t)
		l.verify(s)
		l.checkFull(s)
		l.monitor(s)
		s.kill()
		checkDB(t, d.dir)

		d.grow(t, nil, bigDisk)
		s = d.start(t)
		l.resume(s, 30)
		l.verify(s)
		l.monitor(s)
		if err := s.terminate(); err != nil {
			t.Errorf("provd stopped with %v after the disk was grown", err)
		}
		checkDB(t, d.dir)
	})
}

// A tinyDisk holds a data directory that fills up: a tmpfs of that size
// (writes fail with ENOSPC, a real full disk), or, where mounting is not
// permitted, any directory with provd run under a file size limit
// (RLIMIT_FSIZE: a write past it fails with EFBIG; the Go runtime ignores
// SIGXFSZ).
type tinyDisk struct {
	dir   string // the data directory
	mnt   string // the tmpfs; "" under a file size limit
	limit uint64 // bytes
}

func newTinyDisk(t *testing.T, size uint64) *tinyDisk {
	t.Helper()
	mnt := t.TempDir()
	err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size))
	if err == nil {
		// After the TempDir's removal is registered, so before it runs;
		// MNT_DETACH, in case a killed provd's files are still closing.
		t.Cleanup(func() {
			if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", mnt, err)
			}
		})
		t.Logf("data directory on a tmpfs of %d bytes", size)
		return &tinyDisk{dir: filepath.Join(mnt, "data"), mnt: mnt, limit: size}
	}
	t.Logf("mount tmpfs: %v: provd runs under a file size limit instead", err)
	return newLimitedDisk(t, size)
}

// newLimitedDisk returns a tinyDisk that is a file size limit of size
// bytes on provd.
func newLimitedDisk(t *testing.T, size uint64) *tinyDisk {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		msg := fmt.Sprintf("no file size limit to fill: ulimit -f needs sh: %v", err)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + "; CI is set, so this is a failure")
		}
		t.Skip(msg)
	}
	t.Logf("provd runs under a file size limit of %d bytes", size)
	return &tinyDisk{dir: filepath.Join(t.TempDir(), "data"), limit: size}
}

// start runs provd on the disk.
func (d *tinyDisk) start(t *testing.T) *server {
	t.Helper()
	if d.mnt != "" {
		return startChild(t, d.dir)
	}
	// POSIX counts ulimit -f in 512-byte blocks (bash too, as sh). Only
	// the soft limit, so that grow can raise it.
	s := startWrapped(t, d.dir, []string{"sh", "-c", fmt.Sprintf(`ulimit -S -f %d && exec "$0" "$@"`, d.limit/512)})
	if got := fileSizeLimit(t, s.pid); got != d.limit {
		t.Fatalf("provd's file size limit is %d bytes, want %d", got, d.limit)
	}
	return s
}

// grow makes the disk size bytes, under s if it is running.
func (d *tinyDisk) grow(t *testing.T, s *server, size uint64) {
	t.Helper()
	d.limit = size
	if d.mnt != "" {
		if err := syscall.Mount("tmpfs", d.mnt, "tmpfs", syscall.MS_REMOUNT, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
			t.Fatalf("remount %s: %v", d.mnt, err)
		}
	} else if s != nil {
		setFileSizeLimit(t, s.pid, size)
	}
	t.Logf("disk grown to %d bytes", size)
}

// fileSizeLimit returns the soft RLIMIT_FSIZE of process pid.
func fileSizeLimit(t *testing.T, pid int) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := prlimit(pid, nil, &lim); err != nil {
		t.Fatalf("prlimit %d: %v", pid, err)
	}
	return lim.Cur
}

// setFileSizeLimit sets the soft RLIMIT_FSIZE of process pid.
func setFileSizeLimit(t *testing.T, pid int, bytes uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := prlimit(pid, nil, &lim); err != nil {
		t.Fatalf("prlimit %d: %v", pid, err)
	}
	lim.Cur = bytes
	if err := prlimit(pid, &lim, nil); err != nil {
		t.Fatalf("prlimit %d: %v", pid, err)
	}
}

// prlimit is prlimit(2) for RLIMIT_FSIZE, which package syscall lacks.
func prlimit(pid int, set, old *syscall.Rlimit) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// terminate stops a child provd with SIGTERM, as an operator does, and
// returns how it exited.
func (s *server) terminate() error {
	s.t.Helper()
	if err := syscall.Kill(s.pid, syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for Cleanup
		return err
	case <-time.After(20 * time.Second):
		s.t.Fatal("provd did not stop within 20s of SIGTERM")
		return nil
	}
}

// checkDB runs bbolt's consistency check on provd's data file, provd
// stopped. It opens the file read-only: that works on a full disk too.
func checkDB(t *testing.T, data string) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(data, "provtrail.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open the data file: %v", err)
	}
	defer db.Close()
	var errs []error
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return nil
	})
	if err := errors.Join(append(errs, err)...); err != nil {
		t.Fatalf("bbolt check of the data file: %v", err)
	}
}

// A diskLoad is the write load: each worker POSTs the events of one item
// at a time, signed ahead: the operator enrolls a courier for it, the maker
// registers it and hands it to courier 0, who receives it and hands it to
// the new courier, who receives it. It records every acknowledged event
// and every checkpoint provd served.
type diskLoad struct {
	t      *testing.T
	k      *keys
	trust  provenance.Trust
	logKey note.Verifier
	policy merkle.Policy
	mon    monitor.Config
	client *http.Client

	signMu  sync.Mutex // k
	mu      sync.Mutex // the rest
	acked   []acked
	served  map[string]bool // checkpoint notes: from receipts and /checkpoint
	refused map[string]int  // refusals seen, by "status code"
	chains  []*diskChain    // one per worker
	serial  int
}

// A diskChain is a worker's current item: its events, signed ahead, and
// the next one to POST.
type diskChain struct {
	item   provenance.ItemID
	leaves [][]byte
	next   int
}

const (
	diskWorkers = 4
	diskMaker   = "df-maker"
	diskCourier = "df-courier"
	// failsInARow is how many refusals in a row tell a
	// worker the disk is full.
	failsInARow = 5
)

func newDiskLoad(t *testing.T, s *server, d *tinyDisk) *diskLoad {
	t.Helper()
	policy, err := merkle.ParsePolicy([]byte("log " + s.keys.LogKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := note.NewVerifier(s.keys.LogKey)
	if err != nil {
		t.Fatal(err)
	}
	l := &diskLoad{
		t: t, k: newKeys(t, s.data), trust: s.keys, logKey: logKey, policy: policy,
		mon:    monitor.Config{Policy: policy, StatePath: filepath.Join(t.TempDir(), "monitor.json")},
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second},
		served: map[string]bool{}, refused: map[string]int{},
	}
	t.Cleanup(l.client.CloseIdleConnections)
	for _, a := range []struct {
		id   string
		role provenance.Role
	}{{diskMaker, provenance.RoleManufacturer}, {diskCourier, provenance.RoleCourier}} {
		leaf := l.k.enroll(a.id, a.role)
		r := s.submit(leaf)
		l.acked = append(l.acked, acked{index: r.Index, hash: r.LeafHash, cp: r.Checkpoint})
		l.served[r.Checkpoint] = true
	}
	for range diskWorkers {
		l.chains = append(l.chains, l.newChain())
	}
	return l
}

// description pads registrations, so that the disk fills sooner.
var diskDescription = strings.TrimSpace(strings.Repeat("disk full test ", provenance.MaxTextLen/15))

// newChain signs the events of a new item, with l.mu held or before the
// load.
func (l *diskLoad) newChain() *diskChain {
	l.signMu.Lock()
	defer l.signMu.Unlock()
	l.serial++
	courier := fmt.Sprintf("df-courier-%d", l.serial)
	c := &diskChain{item: mustItem(l.t, fmt.Sprintf("DISKFULL-%d", l.serial))}
	c.leaves = append(c.leaves, l.k.enroll(courier, provenance.RoleCourier))
	var prev merkle.Hash
	for _, e := range []provenance.Event{
		{Kind: provenance.KindRegister, Actor: diskMaker, Register: &provenance.Register{Product: "disk full test", Description: diskDescription}},
		{Kind: provenance.KindHandoff, Actor: diskMaker, Handoff: &provenance.Handoff{To: diskCourier}},
		{Kind: provenance.KindReceive, Actor: diskCourier, Receive: &provenance.Receive{By: diskCourier}},
		{Kind: provenance.KindHandoff, Actor: diskCourier, Handoff: &provenance.Handoff{To: courier}},
		{Kind: provenance.KindReceive, Actor: courier, Receive: &provenance.Receive{By: courier}},
	} {
		e.Item, e.Prev = c.item, prev
		leaf := l.k.sign(e)
		prev = merkle.LeafHash(leaf)
		c.leaves = append(c.leaves, leaf)
	}
	return c
}

// post POSTs worker w's next event. An acknowledged one (201) is checked
// and recorded, and the chain moves on; it returns "". A refusal is
// checked (see checkRefusal) and its code returned; the event is POSTed
// again next time. err is a transport error.
//
// A 200 duplicate is an error: only refused events are POSTed again, and
// a refusal must have stored nothing.
func (l *diskLoad) post(ctx context.Context, s *server, w int) (refusal string, err error) {
	l.mu.Lock()
	c := l.chains[w]
	l.mu.Unlock()
	leaf := c.leaves[c.next]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/api/v1/events", bytes.NewReader(leaf))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := l.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return l.checkRefusal(resp, b), nil
	}
	var r receipt
	if err := json.Unmarshal(b, &r); err != nil || r.LeafHash != merkle.LeafHash(leaf).String() || r.Duplicate != (resp.StatusCode == http.StatusOK) {
		l.t.Errorf("POST: %s: receipt %s (%v) for\n%s", resp.Status, b, err, leaf)
		return "bad receipt", nil
	}
	if r.Duplicate {
		l.t.Errorf("POST: %s: a refused event was stored after all: %s", resp.Status, b)
	}
	if cp, index, err := merkle.VerifyProof([]byte(r.Proof), leaf, l.trust.Origin, l.logKey); err != nil || index != r.Index || string(cp.Note) != r.Checkpoint {
		l.t.Errorf("the receipt %s does not verify: index %d, %v", b, index, err)
		return "bad receipt", nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := acked{index: r.Index, hash: r.LeafHash, cp: r.Checkpoint}
	if c.next > 0 { // the enrollment comes first
		a.item = c.item
	}
	l.acked = append(l.acked, a)
	l.served[r.Checkpoint] = true
	if c.next++; c.next == len(c.leaves) {
		l.chains[w] = l.newChain()
	}
	return "", nil
}

// checkRefusal checks a POST that was not acknowledged: a JSON error
// body, 503 storage_full with a Retry-After, never a 500. It returns the
// status and code.
func (l *diskLoad) checkRefusal(resp *http.Response, b []byte) string {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err := json.Unmarshal(b, &e); mt != "application/json" || err != nil || e.Error.Code == "" || e.Error.Message == "" {
		l.t.Errorf("POST: %s, %s: not a JSON error: %q (%v)", resp.Status, resp.Header.Get("Content-Type"), b, err)
	}
	got := strconv.Itoa(resp.StatusCode) + " " + e.Error.Code
	l.mu.Lock()
	l.refused[got]++
	l.mu.Unlock()
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable && e.Error.Code == "storage_full":
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
			l.t.Errorf("POST: 503 storage_full with Retry-After %q", resp.Header.Get("Retry-After"))
		}
	default:
		l.t.Errorf("POST: %s %s, want 503 storage_full", resp.Status, b)
	}
	return got
}

// fill POSTs events until the disk is full: until every worker's event
// was refused storage_full failsInARow times in a row.
func (l *diskLoad) fill(s *server) {
	l.t.Helper()
	start, before := time.Now(), len(l.acked)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range diskWorkers {
		wg.Go(func() {
			inARow := 0
			for inARow < failsInARow && ctx.Err() == nil {
				refusal, err := l.post(ctx, s, w)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						l.t.Errorf("POST: %v", err)
					}
					return
				case refusal == "":
					inARow = 0
				default:
					inARow++
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		l.t.Fatalf("the disk did not fill in %v: %d events acknowledged, refusals %v", time.Since(start).Round(time.Millisecond), len(l.acked)-before, l.refused)
	}
	if l.t.Failed() {
		l.t.FailNow()
	}
	l.t.Logf("disk full after %v: %d events acknowledged, refusals %v", time.Since(start).Round(time.Millisecond), len(l.acked)-before, l.refused)
}

// checkFull checks provd on the full disk: still up, serving reads, and
// refusing writes as fill does.
func (l *diskLoad) checkFull(s *server) {
	l.t.Helper()
	for _, path := range []string{"/healthz", "/keys"} {
		if code, b := s.get(path); code != http.StatusOK {
			l.t.Errorf("GET %s on the full disk: %d %s", path, code, b)
		}
	}
	l.checkpoint(s)
	items := l.recentItems(5)
	for _, id := range items {
		for _, path := range []string{
			"/01/" + id.GTIN + "/21/" + id.Serial,
			"/api/v1/items/" + id.GTIN + "/" + id.Serial,
		} {
			if code, b := s.get(path); code != http.StatusOK {
				l.t.Errorf("GET %s on the full disk: %d %.200s", path, code, b)
			}
		}
		l.checkBundle(s, id)
	}
	// Past the index's save interval (1 s): its saves fail too.
	time.Sleep(1200 * time.Millisecond)
	refused := 0
	for w := range diskWorkers {
		refusal, err := l.post(context.Background(), s, w)
		if err != nil {
			l.t.Fatalf("POST on the full disk: %v", err)
		}
		if refusal != "" {
			refused++
		}
	}
	if code, _ := s.get("/healthz"); code != http.StatusOK {
		l.t.Errorf("/healthz on the full disk: %d", code)
	}
	l.checkpoint(s)
	l.t.Logf("on the full disk: reads served (%d items' pages, JSON and verified bundles), %d of %d writes refused", len(items), refused, diskWorkers)
}

// checkBundle GETs id's bundle, verifies it offline and checks it holds
// every acknowledged event of id at its index.
func (l *diskLoad) checkBundle(s *server, id provenance.ItemID) {
	l.t.Helper()
	code, b := s.get("/api/v1/items/" + id.GTIN + "/" + id.Serial + "/bundle")
	if code != http.StatusOK {
		l.t.Fatalf("bundle of %s: %d %.200s", id, code, b)
	}
	h, err := provenance.VerifyBundle(b, l.trust)
	if err != nil {
		l.t.Fatalf("bundle of %s: %v", id, err)
	}
	in := map[uint64]string{}
	for _, e := range h.Events {
		in[e.Index] = e.LeafHash.String()
	}
	for _, a := range l.acked {
		if a.item == id && in[a.index] != a.hash {
			l.t.Fatalf("bundle of %s: %q at index %d, the receipt said %s", id, in[a.index], a.index, a.hash)
		}
	}
}

// recentItems returns up to n items with acknowledged events, the latest
// first.
func (l *diskLoad) recentItems(n int) []provenance.ItemID {
	seen := map[provenance.ItemID]bool{}
	var out []provenance.ItemID
	for i := len(l.acked) - 1; i >= 0 && len(out) < n; i-- {
		if id := l.acked[i].item; id != (provenance.ItemID{}) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// checkpoint GETs /checkpoint, checks it and records it.
func (l *diskLoad) checkpoint(s *server) merkle.Checkpoint {
	l.t.Helper()
	code, b := s.get("/checkpoint")
	if code != http.StatusOK {
		l.t.Fatalf("/checkpoint: %d %s", code, b)
	}
	cp, err := l.policy.Verify(b)
	if err != nil {
		l.t.Fatalf("/checkpoint: %v", err)
	}
	l.served[string(b)] = true
	return cp
}

// resume POSTs n events per worker after room was made: every one must be
// acknowledged.
func (l *diskLoad) resume(s *server, n int) {
	l.t.Helper()
	before := len(l.acked)
	var wg sync.WaitGroup
	for w := range diskWorkers {
		wg.Go(func() {
			for range n {
				refusal, err := l.post(context.Background(), s, w)
				if err != nil || refusal != "" {
					l.t.Errorf("POST after the disk was grown: %q %v", refusal, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if l.t.Failed() {
		l.t.FailNow()
	}
	l.t.Logf("after the disk was grown: %d events acknowledged", len(l.acked)-before)
}

// verify checks every acknowledged event against s's tree and items API,
// and every checkpoint served so far against s's checkpoint.
func (l *diskLoad) verify(s *server) {
	l.t.Helper()
	verifyAcked(l.t, s, l.policy, l.acked, 0)
	for _, id := range l.recentItems(5) {
		l.checkBundle(s, id)
	}
	cp := l.checkpoint(s)
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	hr := tlog.TileHashReader(tree, &cachedTiles{t: l.t, s: s, tiles: map[string][]byte{}})
	for c := range l.served {
		old, err := l.policy.Verify([]byte(c))
		if err != nil {
			l.t.Fatalf("a served checkpoint: %v", err)
		}
		if old.Size > cp.Size {
			l.t.Fatalf("rollback: provd served a checkpoint of size %d, its tree is now %d", old.Size, cp.Size)
		}
		p, err := tlog.ProveTree(tree.N, int64(old.Size), hr)
		if err != nil {
			l.t.Fatalf("prove size %d: %v", old.Size, err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, int64(old.Size), tlog.Hash(old.Root)); err != nil {
			l.t.Fatalf("fork: the served checkpoint of size %d is not consistent with the tree of size %d: %v", old.Size, cp.Size, err)
		}
	}
	l.t.Logf("%d served checkpoints consistent with size %d", len(l.served), cp.Size)
}

// monitor runs merkle/monitor against s, its state kept across calls.
func (l *diskLoad) monitor(s *server) {
	l.t.Helper()
	l.mon.URL = s.url
	res, err := monitor.Check(l.t.Context(), l.mon)
	if err != nil {
		l.t.Fatalf("monitor: %v", err)
	}
	l.t.Logf("monitor: size %d -> %d", res.Old.Size, res.New.Size)
}
