package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/monitor"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/tlog"
)

// An acked event: one the client got a 201 receipt for.
type acked struct {
	index uint64
	hash  string
	item  provenance.ItemID // zero for an enrollment
	cp    string            // the receipt's checkpoint
}

// crashItem is a worker's item: its chain so far, and the signed event the
// worker is trying to log (kept across a kill: it is POSTed again, and a
// logged one answers as a duplicate at its index).
type crashItem struct {
	id      provenance.ItemID
	events  int
	last    merkle.Hash
	holder  string
	to      string // of the handoff last signed
	pending []byte
}

// TestCrash runs provd as a child process on one data directory, puts it
// under a write load, kills it with SIGKILL at a random moment, restarts
// it and checks nothing acknowledged was lost or moved: 20 times. After
// each restart every event whose 201 receipt the client saw is at the
// receipt's index with the receipt's leaf hash (by an inclusion proof from
// the served tiles against the new signed checkpoint, and in the item's
// history from the API), every checkpoint a receipt carried is proved
// consistent with the new tree, and merkle/monitor, whose state is kept
// across rounds, accepts the new checkpoint.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts provd 20 times")
	}
	const rounds = 20
	data := filepath.Join(t.TempDir(), "data")
	s := startChild(t, data)
	trust := s.keys
	policy, err := merkle.ParsePolicy([]byte("log " + trust.LogKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	mon := monitor.Config{Policy: policy, StatePath: filepath.Join(t.TempDir(), "monitor.json")}
	load := newCrashLoad(t, s, newKeys(t, data), 4)
	fresh := 0 // load.all[fresh:] were acked this round
	for round := range rounds {
		load.untilKilled(s, round, 300*time.Millisecond+rand.N(700*time.Millisecond))
		s = startChild(t, data)
		mon.URL = s.url
		res, err := monitor.Check(t.Context(), mon)
		if err != nil {
			t.Fatalf("round %d: monitor: %v", round, err)
		}
		t.Logf("round %d: killed after %d acknowledged events; restarted (monitor: size %d -> %d)", round, len(load.all)-fresh, res.Old.Size, res.New.Size)
		verifyAcked(t, s, policy, load.all, fresh)
		fresh = len(load.all)
	}
	t.Logf("%d kills; %d acknowledged events (%d of them answered as duplicates after a kill) all present at their receipts' index", rounds, len(load.all), load.dups)
	if len(load.all) < 100 {
		t.Errorf("only %d events were acknowledged in %d rounds: the load did too little", len(load.all), rounds)
	}
}

// A crashLoad is the write load of the crash tests: workers, each with
// its item, sign its chain (register, then handoffs and receives between
// a maker and two couriers) and POST it event by event, keeping the
// receipts. An event whose answer a kill cut off is POSTed again after the
// restart, and a logged one answers as a duplicate.
type crashLoad struct {
	t     *testing.T
	k     *keys
	items []*crashItem // one a worker

	signMu sync.Mutex // over k
	mu     sync.Mutex // over what follows
	all    []acked
	dups   int // receipts of events POSTed again after a kill
	serial int
}

// The actors of a crashLoad.
const crashMaker, crashCourier0, crashCourier1 = "crash-maker", "crash-courier0", "crash-courier1"

// newCrashLoad enrolls the load's actors through s and gives each of
// workers an item.
func newCrashLoad(t *testing.T, s *server, k *keys, workers int) *crashLoad {
	t.Helper()
	l := &crashLoad{t: t, k: k, items: make([]*crashItem, workers)}
	for _, a := range []struct {
		id   string
		role provenance.Role
	}{{crashMaker, provenance.RoleManufacturer}, {crashCourier0, provenance.RoleCourier}, {crashCourier1, provenance.RoleCourier}} {
		r := s.submit(k.enroll(a.id, a.role))
		l.all = append(l.all, acked{index: r.Index, hash: r.LeafHash, cp: r.Checkpoint})
	}
	for w := range l.items {
		l.items[w] = l.newItem()
	}
	return l
}

// ackedSize returns the smallest log size that holds every acked event.
func (l *crashLoad) ackedSize() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n uint64
	for _, a := range l.all {
		n = max(n, a.index+1)
	}
	return n
}

// newItem returns a fresh item for a worker. Called with l.mu held, or
// before the load.
func (l *crashLoad) newItem() *crashItem {
	l.serial++
	return &crashItem{id: mustItem(l.t, fmt.Sprintf("CRASH-%d", l.serial)), holder: crashMaker}
}

// nextEvent signs the item's next event: register, then handoffs and
// receives, the maker to courier 0, then between the couriers.
func (l *crashLoad) nextEvent(it *crashItem) []byte {
	e := provenance.Event{Item: it.id, Prev: it.last}
	switch {
	case it.events == 0:
		e.Kind, e.Actor, e.Register = provenance.KindRegister, crashMaker, &provenance.Register{Product: "crash test"}
	case it.events%2 == 1:
		it.to = crashCourier0
		if it.holder == crashCourier0 {
			it.to = crashCourier1
		}
		e.Kind, e.Actor, e.Handoff = provenance.KindHandoff, it.holder, &provenance.Handoff{To: it.to}
	default:
		e.Kind, e.Actor, e.Receive = provenance.KindReceive, it.to, &provenance.Receive{By: it.to}
	}
	l.signMu.Lock()
	defer l.signMu.Unlock()
	return l.k.sign(e)
}

// advance records that the item's pending event is logged.
func advance(it *crashItem) {
	if it.events > 0 && it.events%2 == 0 { // a receive: the receiver holds it
		it.holder = it.to
	}
	it.events++
	it.last = merkle.LeafHash(it.pending)
	it.pending = nil
}

// untilKilled runs the load against s, kills s with SIGKILL after the
// given time, and returns once every worker stopped. A worker stops at
// its first transport error: provd is gone, and its pending event is
// POSTed again next round. Any other answer than a receipt fails the test.
func (l *crashLoad) untilKilled(s *server, round int, after time.Duration) {
	t := l.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for w := range l.items {
		wg.Go(func() {
			for ctx.Err() == nil {
				it := l.items[w]
				if it.pending == nil {
					it.pending = l.nextEvent(it)
				}
				code, body, err := postEvent(ctx, client, s.url, it.pending)
				if err != nil {
					return // provd was killed (or the round is over): retry next round
				}
				// 201, or 200 for a duplicate: an event logged before
				// a kill whose answer was lost, POSTed again.
				if code != http.StatusCreated && code != http.StatusOK {
					t.Errorf("round %d: POST: %d %s\n%s", round, code, body, it.pending)
					return
				}
				var r receipt
				if err := json.Unmarshal(body, &r); err != nil || r.LeafHash != merkle.LeafHash(it.pending).String() || r.Duplicate != (code == http.StatusOK) {
					t.Errorf("round %d: receipt %s: %v", round, body, err)
					return
				}
				l.mu.Lock()
				if r.Duplicate {
					l.dups++
				}
				l.all = append(l.all, acked{index: r.Index, hash: r.LeafHash, item: it.id, cp: r.Checkpoint})
				l.mu.Unlock()
				advance(it)
				if it.events >= 9 {
					l.mu.Lock()
					l.items[w] = l.newItem()
					l.mu.Unlock()
				}
			}
		})
	}
	time.Sleep(after)
	s.kill()
	cancel()
	wg.Wait()
	client.CloseIdleConnections()
	if t.Failed() {
		t.FailNow()
	}
}

// verifyAcked checks the acked events against provd's new tree. Every one
// is at its index with its leaf hash: the level-0 hashes are read from the
// served tiles through tlog.TileHashReader, which authenticates them against
// the new signed checkpoint. The items with events acked this round (from
// fresh, since earlier) and a sample of older ones are also read from the
// items API. Every checkpoint a receipt of this round carried is proved
// consistent with the new tree; those of earlier rounds were proved
// consistent with an earlier tree, which merkle/monitor proved the new one
// extends.
func verifyAcked(t *testing.T, s *server, policy merkle.Policy, all []acked, fresh int) {
	t.Helper()
	code, b := s.get("/checkpoint")
	if code != http.StatusOK {
		t.Fatalf("/checkpoint: %d %s", code, b)
	}
	cp, err := policy.Verify(b)
	if err != nil {
		t.Fatal(err)
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	hr := tlog.TileHashReader(tree, &cachedTiles{t: t, s: s, tiles: map[string][]byte{}})
	indexes := make([]int64, len(all))
	for i, a := range all {
		if a.index >= cp.Size {
			t.Fatalf("acknowledged event %d (%s) is past the new tree of size %d", a.index, a.hash, cp.Size)
		}
		indexes[i] = tlog.StoredHashIndex(0, int64(a.index))
	}
	hashes, err := hr.ReadHashes(indexes)
	if err != nil {
		t.Fatalf("read the leaf hashes of the new tree: %v", err)
	}
	for i, a := range all {
		if got := merkle.Hash(hashes[i]).String(); got != a.hash {
			t.Fatalf("acknowledged event %d: the new tree holds leaf %s there, the receipt said %s", a.index, got, a.hash)
		}
	}

	histories := checkHistories(t, s, all, fresh)

	cps := map[string]bool{}
	for _, a := range all[fresh:] {
		cps[a.cp] = true
	}
	for c := range cps {
		old, err := policy.Verify([]byte(c))
		if err != nil {
			t.Fatalf("a receipt's checkpoint: %v", err)
		}
		if old.Size > cp.Size {
			t.Fatalf("rollback: a receipt's checkpoint had size %d, the tree now %d", old.Size, cp.Size)
		}
		p, err := tlog.ProveTree(tree.N, int64(old.Size), hr)
		if err != nil {
			t.Fatalf("prove size %d: %v", old.Size, err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, int64(old.Size), tlog.Hash(old.Root)); err != nil {
			t.Fatalf("fork: the checkpoint of size %d a receipt carried is not consistent with the new tree of size %d: %v", old.Size, cp.Size, err)
		}
	}
	t.Logf("%d acknowledged events at their index, %d item histories read, %d receipt checkpoints proved consistent with size %d",
		len(all), histories, len(cps), cp.Size)
}

// checkHistories reads from the items API the histories of the items
// with events acked since fresh, and of a sample of older ones, and checks
// each acked event of theirs is there at its index. It returns how many it
// read.
func checkHistories(t *testing.T, s *server, all []acked, fresh int) int {
	t.Helper()
	sample := map[provenance.ItemID]bool{}
	for i, a := range all {
		if a.item != (provenance.ItemID{}) && (i >= fresh || rand.N(len(all)) < 100) {
			sample[a.item] = true
		}
	}
	histories := map[provenance.ItemID]map[uint64]string{}
	for id := range sample {
		histories[id] = itemHistory(t, s, id)
	}
	for _, a := range all {
		if hist, ok := histories[a.item]; ok && hist[a.index] != a.hash {
			t.Fatalf("item %s: history has %q at index %d, the receipt said %s", a.item, hist[a.index], a.index, a.hash)
		}
	}
	return len(histories)
}

// itemHistory returns an item's events, index to leaf hash, from the API.
func itemHistory(t *testing.T, s *server, id provenance.ItemID) map[uint64]string {
	t.Helper()
	code, b := s.get("/api/v1/items/" + id.GTIN + "/" + id.Serial)
	if code != http.StatusOK {
		t.Fatalf("item %s: %d %s", id, code, b)
	}
	var v struct {
		Events []struct {
			Index    uint64 `json:"index"`
			LeafHash string `json:"leaf_hash"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("item %s: %v", id, err)
	}
	out := map[uint64]string{}
	for _, e := range v.Events {
		out[e.Index] = e.LeafHash
	}
	return out
}

// cachedTiles reads C2SP tiles from provd for tlog.TileHashReader (which
// checks them against the tree's root), each path once.
type cachedTiles struct {
	t     *testing.T
	s     *server
	tiles map[string][]byte
}

func (r *cachedTiles) Height() int { return merkle.TileHeight }

func (r *cachedTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tl := range tiles {
		// x/mod names tiles tile/<H>/<L>/<N>[.p/<W>]; C2SP drops the height.
		path := strings.Replace(tl.Path(), fmt.Sprintf("tile/%d/", merkle.TileHeight), "tile/", 1)
		if b, ok := r.tiles[path]; ok {
			out[i] = b
			continue
		}
		code, b := r.s.get("/" + path)
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET /%s: %d %s", path, code, b)
		}
		r.tiles[path], out[i] = b, b
	}
	return out, nil
}

func (r *cachedTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// postEvent POSTs a signed event; err is a transport error.
func postEvent(ctx context.Context, client *http.Client, url string, leaf []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/events", bytes.NewReader(leaf))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}
