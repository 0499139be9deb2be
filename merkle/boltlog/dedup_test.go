package boltlog

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
		return b.dedup.Delete(runChunkKey(0, run{count: 2 * runLeaves}.chunks()-1))
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
