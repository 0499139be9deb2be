package boltlog

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// refRoot computes the tree hash with x/mod's tlog, an implementation that
// is not ours.
func refRoot(t *testing.T, leaves [][]byte) merkle.Hash {
	t.Helper()
	var stored []tlog.Hash
	for i, leaf := range leaves {
		hs, err := tlog.StoredHashes(int64(i), leaf, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, x := range idx {
				out[j] = stored[x]
			}
			return out, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	if len(leaves) == 0 {
		return merkle.EmptyRoot()
	}
	h, err := tlog.TreeHash(int64(len(leaves)), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for j, x := range idx {
			out[j] = stored[x]
		}
		return out, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return merkle.Hash(h)
}

// TestManyChunksAndRuns crosses chunk, tile and dedup-run boundaries with
// batches of odd sizes, then reopens and checks root, proofs and dedup.
func TestManyChunksAndRuns(t *testing.T) {
	dir := t.TempDir()
	s, v := testKey(t)
	l, db := openLog(t, dir, s)
	ctx := t.Context()

	var leaves [][]byte
	n := 3*runLeaves + 777
	for len(leaves) < n {
		k := min(1+len(leaves)%613, n-len(leaves))
		batch := make([][]byte, k)
		for i := range batch {
			batch[i] = fmt.Appendf(nil, "leaf %d", len(leaves)+i)
		}
		idx, err := l.Append(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range idx {
			if x != uint64(len(leaves)+i) {
				t.Fatalf("leaf %d got index %d", len(leaves)+i, x)
			}
		}
		leaves = append(leaves, batch...)
	}
	check := func(l *Log) {
		t.Helper()
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := merkle.ParseCheckpoint(cp.Note, testOrigin, v); err != nil {
			t.Fatal(err)
		}
		if want := refRoot(t, leaves); cp.Size != uint64(n) || cp.Root != want {
			t.Fatalf("checkpoint (%d, %v), want (%d, %v)", cp.Size, cp.Root, n, want)
		}
		for _, i := range []uint64{0, 1, 125, 126, 4095, 4096, 8191, uint64(n) - 1} {
			p, err := l.InclusionProof(ctx, i, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := merkle.VerifyInclusion(merkle.LeafHash(leaves[i]), i, cp.Size, cp.Root, p); err != nil {
				t.Errorf("leaf %d: %v", i, err)
			}
		}
		// Every earlier leaf is found again, from runs and from memory.
		idx, err := l.Append(ctx, [][]byte{leaves[0], leaves[runLeaves+3], leaves[n-1]})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(idx) != fmt.Sprint([]uint64{0, runLeaves + 3, uint64(n) - 1}) {
			t.Fatalf("dedup gave %v", idx)
		}
		got, err := l.Leaves(ctx, 4090, 4100)
		if err != nil {
			t.Fatal(err)
		}
		for i, g := range got {
			if string(g) != string(leaves[4090+i]) {
				t.Fatalf("leaf %d = %q", 4090+i, g)
			}
		}
	}
	check(l)
	l.Close()
	db.Close()
	l, db = openLog(t, dir, s)
	defer db.Close()
	defer l.Close()
	check(l)
}

func TestConcurrentAppendsShareCommits(t *testing.T) {
	s, _ := testKey(t)
	l, db := openLog(t, t.TempDir(), s)
	defer db.Close()
	defer l.Close()
	var wg sync.WaitGroup
	got := make([][]uint64, 64)
	for g := range got {
		wg.Go(func() {
			for i := range 20 {
				idx, err := l.Append(t.Context(), [][]byte{fmt.Appendf(nil, "%d/%d", g, i)})
				if err != nil {
					t.Error(err)
					return
				}
				got[g] = append(got[g], idx[0])
			}
		})
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for _, idxs := range got {
		for _, i := range idxs {
			if seen[i] {
				t.Fatalf("index %d given twice", i)
			}
			seen[i] = true
		}
	}
	if len(seen) != 64*20 {
		t.Fatalf("%d distinct indices", len(seen))
	}
}

// TestLingerOnlyUnderConcurrency sets a linger far longer than the test's
// deadline: a lone appender must not wait for it, and concurrent appenders
// must be released by the first gap in arrivals, not by the deadline.
func TestLingerOnlyUnderConcurrency(t *testing.T) {
	s, _ := testKey(t)
	db := openDB(t, filepath.Join(t.TempDir(), "log.db"))
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	open := func(gap time.Duration) *Log {
		l, err := Open(t.Context(), Config{DB: db, Origin: testOrigin, Signer: s, MaxWait: time.Hour, MaxGap: gap})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open(time.Hour)
	for i := range 5 {
		if _, err := l.Append(ctx, [][]byte{fmt.Appendf(nil, "lone %d", i)}); err != nil {
			t.Fatalf("lone append %d: %v (did it linger?)", i, err)
		}
	}
	l.Close()
	l = open(20 * time.Millisecond)
	defer l.Close()
	for round := range 3 {
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				if _, err := l.Append(ctx, [][]byte{fmt.Appendf(nil, "round %d, %d", round, g)}); err != nil {
					t.Errorf("concurrent append: %v (did the gap not end the linger?)", err)
				}
			})
		}
		wg.Wait()
	}
	if t.Failed() {
		return
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 5+3*16 {
		t.Fatalf("size %d, want %d", cp.Size, 5+3*16)
	}
	if n := l.commits.Load(); n >= 3*16 {
		t.Errorf("%d commits for 3 rounds of 16 concurrent appends: no coalescing", n)
	}
}

// TestAppendProved appends from concurrent callers, some leaves twice, and
// checks every proof AppendProved returns: its checkpoint verifies, the
// proof leads to the root, it equals the proof read from storage, and it
// came from memory. Leaf hashes that do not match the leaves in number
// are refused.
func TestAppendProved(t *testing.T) {
	s, v := testKey(t)
	l, db := openLog(t, t.TempDir(), s)
	defer db.Close()
	defer l.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var all []merkle.Proved
	var leaves [][]byte
	for g := range 32 {
		wg.Go(func() {
			for i := range 30 {
				batch := [][]byte{fmt.Appendf(nil, "%d/%d", g, i)}
				if i%7 == 3 {
					batch = append(batch, fmt.Appendf(nil, "%d/%d", g, i-1)) // in the log already
				}
				if i%5 == 0 {
					batch = append(batch, fmt.Appendf(nil, "shared %d", i)) // raced by others
				}
				// Half the callers give the leaf hashes, as the Service does.
				var hashes []merkle.Hash
				if g%2 == 0 {
					for _, leaf := range batch {
						hashes = append(hashes, merkle.LeafHash(leaf))
					}
				}
				got, err := l.AppendProved(t.Context(), batch, hashes)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				all = append(all, got...)
				leaves = append(leaves, batch...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	proved := 0
	for i, p := range all {
		if p.Proof == nil {
			if p.Checkpoint.Note != nil {
				t.Fatalf("leaf %q: checkpoint without proof", leaves[i])
			}
			continue
		}
		proved++
		cp, err := merkle.ParseCheckpoint(p.Checkpoint.Note, testOrigin, v)
		if err != nil {
			t.Fatalf("leaf %q: %v", leaves[i], err)
		}
		if err := merkle.VerifyInclusion(merkle.LeafHash(leaves[i]), p.Index, cp.Size, cp.Root, p.Proof); err != nil {
			t.Fatalf("leaf %q at %d: %v", leaves[i], p.Index, err)
		}
		stored, err := l.InclusionProof(t.Context(), p.Index, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(stored, p.Proof) {
			t.Fatalf("leaf %d: proof differs from the stored one", p.Index)
		}
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if uint64(proved) < cp.Size {
		t.Errorf("%d proofs for %d leaves: every leaf gets one when it is added", proved, cp.Size)
	}
	if n := l.misses.Load(); n != 0 {
		t.Errorf("%d proofs were read from storage, not made from the commit's nodes", n)
	}
	if _, err := l.AppendProved(t.Context(), [][]byte{[]byte("a"), []byte("b")}, []merkle.Hash{merkle.LeafHash([]byte("a"))}); err == nil {
		t.Error("AppendProved took 1 hash for 2 leaves")
	}
	if after, _ := l.Checkpoint(t.Context()); after.Size != cp.Size {
		t.Errorf("a refused AppendProved changed the size from %d to %d", cp.Size, after.Size)
	}
}
