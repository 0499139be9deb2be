package boltlog

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"go.etcd.io/bbolt"
)

// TestLookupRun writes runs whose prefixes are not uniform, bunched in a
// narrow range, at the ends of the range, or one prefix over several
// chunks, and checks that a lookup of every prefix finds exactly its
// entries and that prefixes between them find none.
func TestLookupRun(t *testing.T) {
	const count = 8 * chunkEntries // and a partial chunk in some cases
	cases := []struct {
		name   string
		prefix func(rng *rand.Rand, i int) uint64
	}{
		{"uniform", func(rng *rand.Rand, i int) uint64 { return rng.Uint64() }},
		{"bunched", func(rng *rand.Rand, i int) uint64 { return 1<<40 + rng.Uint64N(1<<20) }},
		{"ends", func(rng *rand.Rand, i int) uint64 {
			if i%2 == 0 {
				return rng.Uint64N(1000)
			}
			return ^rng.Uint64N(1000)
		}},
		{"one prefix over chunks", func(rng *rand.Rand, i int) uint64 {
			if i >= 2*chunkEntries-5 && i < 4*chunkEntries+5 {
				return 1 << 63
			}
			return rng.Uint64()
		}},
		{"small", func(rng *rand.Rand, i int) uint64 { return rng.Uint64N(50) * 3 }},
	}
	for _, c := range cases {
		for _, n := range []int{count, count + 17, 5} {
			t.Run(fmt.Sprintf("%s/%d", c.name, n), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(n), 7))
				v := make([]byte, n*entrySize)
				want := map[uint64][]uint64{}
				for i := range n {
					var h merkle.Hash
					p := c.prefix(rng, i)
					binary.BigEndian.PutUint64(h[:], p)
					putEntry(v[i*entrySize:], h, uint64(i))
					want[p] = append(want[p], uint64(i))
				}
				sortEntries(v)
				db := openDB(t, filepath.Join(t.TempDir(), "log.db"))
				t.Cleanup(func() { db.Close() })
				err := db.Update(func(tx *bbolt.Tx) error {
					if err := createBuckets(tx); err != nil {
						return err
					}
					b, err := openBuckets(tx)
					if err != nil {
						return err
					}
					r, err := b.writeRun(4096, v)
					if err != nil {
						return err
					}
					lookup := func(p uint64) []uint64 {
						var h merkle.Hash
						binary.BigEndian.PutUint64(h[:], p)
						var got []uint64
						if _, err := b.lookupRun(r, h, func(i uint64) bool { got = append(got, i); return false }); err != nil {
							t.Fatal(err)
						}
						return got
					}
					for p, idx := range want {
						if got := lookup(p); !slices.Equal(got, idx) {
							t.Errorf("prefix %#x: found %v, want %v", p, got, idx)
						}
						for _, q := range []uint64{p - 1, p + 1} {
							if _, ok := want[q]; !ok && len(lookup(q)) > 0 {
								t.Errorf("prefix %#x: found %v, want none", q, lookup(q))
							}
						}
					}
					for _, q := range []uint64{0, 1, ^uint64(0)} {
						if _, ok := want[q]; !ok && len(lookup(q)) > 0 {
							t.Errorf("prefix %#x: found %v, want none", q, lookup(q))
						}
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestReopenedLogDedups appends leaves over several run merges, reopens
// the log and appends every leaf again: each gets its first index back,
// whether a run or the memory since the last run holds it.
func TestReopenedLogDedups(t *testing.T) {
	dir := t.TempDir()
	s, _ := testKey(t)
	l, db := openLog(t, dir, s)
	ctx := t.Context()
	n := 7*runLeaves + 123
	var leaves [][]byte
	for len(leaves) < n {
		batch := make([][]byte, min(1000, n-len(leaves)))
		for i := range batch {
			batch[i] = fmt.Appendf(nil, "leaf %d", len(leaves)+i)
		}
		if _, err := l.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, batch...)
	}
	l.Close()
	db.Close()
	l, db = openLog(t, dir, s)
	t.Cleanup(func() { l.Close(); db.Close() })
	idx, err := l.Append(ctx, leaves)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range idx {
		if x != uint64(i) {
			t.Fatalf("leaf %d appended again got index %d", i, x)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(n) {
		t.Fatalf("log grew to %d leaves, want %d", cp.Size, n)
	}
}

// TestOpenChecksRuns opens a file whose dedup runs do not match its size,
// as if a run were lost, and expects an error naming the run.
func TestOpenChecksRuns(t *testing.T) {
	dir := t.TempDir()
	s, _ := testKey(t)
	l, db := openLog(t, dir, s)
	batch := make([][]byte, 2*runLeaves)
	for i := range batch {
		batch[i] = fmt.Appendf(nil, "leaf %d", i)
	}
	if _, err := l.Append(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	l.Close()
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		runs, err := b.runs()
		if err != nil || len(runs) != 1 {
			return fmt.Errorf("runs %v, %v; want one", runs, err)
		}
		return b.dedup.Delete(runs[0].chunkKey(runs[0].chunks() - 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(t.Context(), Config{DB: db, Origin: testOrigin, Signer: s})
	db.Close()
	if err == nil || !strings.Contains(err.Error(), "dedup run 0") {
		t.Fatalf("Open: %v, want an error naming dedup run 0", err)
	}
}

// appendNumbered appends leaves "leaf <i>" for i in [from, to), in
// batches of batch, and returns them.
func appendNumbered(t *testing.T, l *Log, from, to, batch int) [][]byte {
	t.Helper()
	var out [][]byte
	for i := from; i < to; i += batch {
		leaves := make([][]byte, min(batch, to-i))
		for j := range leaves {
			leaves[j] = fmt.Appendf(nil, "leaf %d", i+j)
		}
		if _, err := l.Append(t.Context(), leaves); err != nil {
			t.Fatal(err)
		}
		out = append(out, leaves...)
	}
	return out
}

// checkDedup appends leaves again and checks each gets its first index,
// leaf i index i, and the log does not grow.
func checkDedup(t *testing.T, l *Log, leaves [][]byte) {
	t.Helper()
	idx, err := l.Append(t.Context(), leaves)
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range idx {
		if x != uint64(i) {
			t.Fatalf("leaf %d appended again got index %d", i, x)
		}
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(len(leaves)) {
		t.Fatalf("log grew to %d leaves, want %d", cp.Size, len(leaves))
	}
}

// storedRuns reads the run list as committed.
func storedRuns(t *testing.T, db *bbolt.DB) []run {
	t.Helper()
	var runs []run
	err := db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		runs, err = b.runs()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// waitMerged waits until the committed run list is want's sizes.
func waitMerged(t *testing.T, db *bbolt.DB, want ...uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		runs := storedRuns(t, db)
		var got []uint64
		for _, r := range runs {
			got = append(got, r.count/runLeaves)
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs of %v times %d leaves, want %v", got, runLeaves, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMergeInSteps merges runs in transactions of one chunk between
// commits, cuts a merge short as a crash would, and checks that dedup
// finds every leaf while merges are under way, after them, and after a
// reopen that does the cut merge again.
func TestMergeInSteps(t *testing.T) {
	dir := t.TempDir()
	s, _ := testKey(t)
	open := func() (*Log, *bbolt.DB) {
		db := openDB(t, filepath.Join(dir, "log.db"))
		l, err := Open(t.Context(), Config{DB: db, Origin: testOrigin, Signer: s, mergeInCommit: runLeaves, mergeStep: 1})
		if err != nil {
			db.Close()
			t.Fatal(err)
		}
		return l, db
	}
	l, db := open()
	leaves := appendNumbered(t, l, 0, 3*runLeaves+10, 500)
	checkDedup(t, l, leaves)
	waitMerged(t, db, 2, 1)
	leaves = append(leaves, appendNumbered(t, l, len(leaves), 4*runLeaves+10, 500)...)
	waitMerged(t, db, 4)
	// Two more runs, due to merge, and half of their merge written, as
	// if the process died during it.
	leaves = append(leaves, appendNumbered(t, l, len(leaves), 6*runLeaves+10, runLeaves)...)
	l.Close()
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		runs, err := b.runs()
		if err != nil {
			return err
		}
		m, ok := dueMerge(runs)
		if !ok {
			t.Logf("runs %v: the merge was done before the close", runs)
			return nil
		}
		return b.step(m, m.out.chunks()/2)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, db = open()
	t.Cleanup(func() { l.Close(); db.Close() })
	checkDedup(t, l, leaves)
	waitMerged(t, db, 4, 2)
	checkDedup(t, l, leaves)
}

// TestOpenV1 opens a file in the boltlog/v1 layout, whose runs are not
// listed but follow from its size, and checks that it is now boltlog/v2
// and still finds every leaf.
func TestOpenV1(t *testing.T) {
	dir := t.TempDir()
	s, _ := testKey(t)
	l, db := openLog(t, dir, s)
	leaves := appendNumbered(t, l, 0, 7*runLeaves+100, 1000)
	l.Close()
	// Rewrite the runs as v1 did: one for each bit of size/runLeaves,
	// largest first, none under the alternate keys, and no run list.
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		runs, err := b.runs()
		if err != nil {
			return err
		}
		// Every entry, in the order of its leaf.
		all := make([]byte, b.size()*entrySize)
		for _, r := range runs {
			for i := range r.chunks() {
				for v := b.dedup.Get(r.chunkKey(i)); len(v) > 0; v = v[entrySize:] {
					copy(all[entryIndex(v)*entrySize:], v[:entrySize])
				}
			}
			if err := b.deleteRun(r); err != nil {
				return err
			}
		}
		for _, r := range runsOf(b.size()) {
			v := slices.Clone(all[r.start*entrySize : (r.start+r.count)*entrySize])
			sortEntries(v)
			if _, err := b.writeRun(r.start, v); err != nil {
				return err
			}
		}
		if err := b.meta.Delete([]byte(runsKey)); err != nil {
			return err
		}
		return b.meta.Put([]byte(formatKey), []byte(formatV1))
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, db = openLog(t, dir, s)
	t.Cleanup(func() { l.Close(); db.Close() })
	checkDedup(t, l, leaves)
	err = db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if f := b.meta.Get([]byte(formatKey)); string(f) != formatV2 {
			t.Errorf("format %q after open, want %q", f, formatV2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
