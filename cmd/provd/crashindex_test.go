package main

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/trillianlog"
	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"go.etcd.io/bbolt"
)

// The tests in this file kill provd (SIGKILL) while it applies the log
// and saves its index, on both index backends. provd runs with
// --save-interval 5ms under a steady write load, so a save of the index
// is in flight or just behind most of the time and the kills, at varied
// moments, land before, during and after saves. After the last restart
// each test waits until the saved index covers the whole log and
// compares it, byte for byte, with an index rebuilt from the log, and
// checks every acknowledged event is in the log at its receipt's index,
// in its item's history, and that the items' pages answer.

// crashSaveArgs make provd save its index as often as it can under load.
var crashSaveArgs = []string{"--save-interval", "5ms"}

// crashPause returns how long a round of load runs before its kill: 50 ms
// to 1 s, so that a kill finds provd at varied points of applying and
// saving.
func crashPause() time.Duration {
	return 50*time.Millisecond + rand.N(950*time.Millisecond)
}

// TestCrashIndexBolt kills provd on the embedded log and index 12 times
// under load and restarts it. At the end the index saved in provtrail.db,
// read with provd stopped, is at the log's size and dumps (boltstore.Dump)
// to the same bytes as an index rebuilt from the log in a copy of the
// file.
func TestCrashIndexBolt(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts provd 12 times")
	}
	const rounds = 12
	data := filepath.Join(t.TempDir(), "data")
	s := startChild(t, data, crashSaveArgs...)
	policy, err := merkle.ParsePolicy([]byte("log " + s.keys.LogKey + "\nquorum none\n"))
	if err != nil {
		t.Fatal(err)
	}
	load := newCrashLoad(t, s, newKeys(t, data), 4)
	behind := 0 // kills that left acknowledged events out of the saved index
	for round := range rounds {
		load.untilKilled(s, round, crashPause())
		if savedBolt(t, filepath.Join(data, "provtrail.db")) < load.ackedSize() {
			behind++
		}
		s = startChild(t, data, crashSaveArgs...)
	}
	t.Logf("%d of %d kills left acknowledged events for the restart to replay into the index", behind, rounds)
	if behind == 0 {
		t.Errorf("no kill found the saved index behind the acknowledged events: none hit provd while it applied and saved")
	}
	// provd replays what its saved index lacked and saves before it
	// listens, so the index saved now covers the whole log: no writes
	// came since.
	verifyAcked(t, s, policy, load.all, 0)
	checkPages(t, s, load)
	size := s.size()
	trust := s.keys
	s.kill()
	t.Logf("%d kills; %d acknowledged events (%d answered as duplicates after a kill); log size %d", rounds, len(load.all), load.dups, size)

	// The rebuild works on a copy: provtrail.db holds the log and the
	// saved index both.
	saved := filepath.Join(data, "provtrail.db")
	copied := filepath.Join(t.TempDir(), "rebuilt.db")
	copyFile(t, saved, copied)
	live := openBoltIndex(t, saved)
	if at, err := live.Applied(t.Context()); err != nil || at != size {
		t.Fatalf("the saved index applied %d of %d positions (%v)", at, size, err)
	}
	rebuilt := openBoltIndex(t, copied)
	l := openBoltLog(t, rebuilt, data, trust)
	if err := provenance.Rebuild(t.Context(), provenance.ServiceConfig{Log: l, Store: rebuilt.Store, Trust: trust}); err != nil {
		t.Fatal(err)
	}
	if got, want := dumpBolt(t, live.Store), dumpBolt(t, rebuilt.Store); got != want {
		t.Fatalf("the saved index differs from one rebuilt from the log:\nsaved:\n%s\nrebuilt:\n%s", got, want)
	}
}

// TestCrashIndexShared kills a replica on a Trillian tree with its index
// in MariaDB (--index mysql://...) 8 times under load and restarts it. At
// the end, once the shared index is at the log's size, it dumps
// (sqlstore.Store.Dump) to the same bytes as an index rebuilt from the
// Trillian log into a fresh database.
func TestCrashIndexShared(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a provd replica 8 times")
	}
	const rounds = 8
	c := trillianHarness.Cluster(t)
	tree := c.NewTree(t)
	dsn := c.NewDatabase(t)
	args := append(append(replicaArgs(c, tree), "--index", "mysql://"+dsn), crashSaveArgs...)
	data := filepath.Join(t.TempDir(), "replica")
	s := startChild(t, data, args...)
	// Each append waits for a signer pass: more workers keep the applier
	// and its saves as busy as on the embedded log.
	load := newCrashLoad(t, s, newKeys(t, data), 8)
	shared := openIndex(t, dsn)
	l := openTrillianLog(t, c, tree, data, s.keys)
	behind := 0 // kills that left log positions out of the saved index
	for round := range rounds {
		load.untilKilled(s, round, crashPause())
		at, err := shared.Applied(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		cp, err := l.Checkpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if at < cp.Size {
			behind++
		}
		s = startChild(t, data, args...)
	}
	// Not required, unlike on the embedded log: the replica waits for
	// the signer's passes between its short bursts of applying and
	// saving, so a kill misses them often.
	t.Logf("%d of %d kills left log positions for the restart to replay into the index", behind, rounds)
	size := s.size()
	deadline := time.Now().Add(10 * time.Second)
	for {
		at, err := shared.Applied(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if at == size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shared index applied %d of %d positions after 10s", at, size)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkAckedInTrillian(t, l, load.all, size)
	checkHistories(t, s, load.all, 0)
	checkPages(t, s, load)
	t.Logf("%d kills; %d acknowledged events (%d answered as duplicates after a kill); log size %d", rounds, len(load.all), load.dups, size)
	if got, want := dumpIndex(t, shared), rebuildShared(t, c, tree, data, s.keys); got != want {
		t.Fatalf("the shared index differs from one rebuilt from the log:\nshared:\n%s\nrebuilt:\n%s", got, want)
	}
}

// checkAckedInTrillian checks that the Trillian log l holds every acked
// event at its receipt's index, reading Trillian itself rather than the
// tiles a replica serves from it.
func checkAckedInTrillian(t *testing.T, l merkle.Log, all []acked, size uint64) {
	t.Helper()
	leaves, err := l.Leaves(t.Context(), 0, size)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.index >= size {
			t.Fatalf("acknowledged event %d (%s) is past the log's size %d", a.index, a.hash, size)
		}
		if got := merkle.LeafHash(leaves[a.index]).String(); got != a.hash {
			t.Fatalf("acknowledged event %d: the log holds leaf %s there, the receipt said %s", a.index, got, a.hash)
		}
	}
}

// checkPages loads the history page of every item the load registered:
// each answers 200 with a verdict.
func checkPages(t *testing.T, s *server, load *crashLoad) {
	t.Helper()
	seen := map[provenance.ItemID]bool{}
	for _, a := range load.all {
		if a.item == (provenance.ItemID{}) || seen[a.item] {
			continue
		}
		seen[a.item] = true
		code, page := s.get("/01/" + a.item.GTIN + "/21/" + a.item.Serial)
		if code != http.StatusOK || !bytes.Contains(page, []byte(`data-testid="verdict"`)) {
			t.Fatalf("the page of item %s: %d\n%.500s", a.item, code, page)
		}
	}
	t.Logf("the pages of %d items answer", len(seen))
}

// savedBolt returns the position the index saved in the bbolt file path
// is at, with provd stopped.
func savedBolt(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := boltlog.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	at, err := s.Applied(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// A boltIndex is the index in a bbolt file opened outside provd.
type boltIndex struct {
	*boltstore.Store
	db *bbolt.DB
}

// openBoltIndex opens the index in the bbolt file path, closed when the
// test ends.
func openBoltIndex(t *testing.T, path string) *boltIndex {
	t.Helper()
	db, err := boltlog.OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return &boltIndex{Store: s, db: db}
}

// openBoltLog opens the embedded log in the file of ix with the log key
// of the data directory dir, closed when the test ends.
func openBoltLog(t *testing.T, ix *boltIndex, dir string, trust provenance.Trust) merkle.Log {
	t.Helper()
	signer, _, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), trust.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := boltlog.Open(t.Context(), boltlog.Config{DB: ix.db, Origin: trust.Origin, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// openTrillianLog opens tree with the log key of the data directory dir,
// closed when the test ends.
func openTrillianLog(t *testing.T, c *trilliantest.Cluster, tree int64, dir string, trust provenance.Trust) merkle.Log {
	t.Helper()
	signer, _, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), trust.Origin)
	if err != nil {
		t.Fatal(err)
	}
	l, err := trillianlog.Open(t.Context(), trillianlog.Config{Client: c.Client, TreeID: tree, Origin: trust.Origin, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dumpBolt returns the whole index in s, as Dump writes it.
func dumpBolt(t *testing.T, s *boltstore.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Dump(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// copyFile copies the file from to the new file to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
