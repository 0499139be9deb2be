package merkle_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// maxExhaustive is the largest tree size for which every inclusion and
// consistency proof is checked.
const maxExhaustive = 64

func TestVerifyInclusionExhaustive(t *testing.T) {
	rt := newRefTree(t, distinctLeaves(maxExhaustive+1))
	for size := 1; size <= maxExhaustive; size++ {
		root := rt.root(size)
		tlogRoot, err := tlog.TreeHash(int64(size), rt)
		if err != nil {
			t.Fatal(err)
		}
		if merkle.Hash(tlogRoot) != root {
			t.Fatalf("size %d: reference root %v, tlog.TreeHash %v", size, root, tlogRoot)
		}
		for index := range size {
			leafHash := rt.hashes[index]
			p := rt.inclusion(index, size)
			tp, err := tlog.ProveRecord(int64(size), int64(index), rt)
			if err != nil {
				t.Fatalf("tlog.ProveRecord(%d, %d): %v", size, index, err)
			}
			if !equalHashes(fromTlog(tp), p) {
				t.Fatalf("inclusion %d in %d: reference proof %v, tlog proof %v", index, size, p, tp)
			}
			if err := tlog.CheckRecord(toTlog(p), int64(size), tlog.Hash(root), int64(index), tlog.Hash(leafHash)); err != nil {
				t.Fatalf("inclusion %d in %d: tlog.CheckRecord: %v", index, size, err)
			}
			if err := merkle.VerifyInclusion(leafHash, uint64(index), uint64(size), root, p); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d) of a good proof: %v", index, size, err)
			}
			for _, bad := range badInclusions(rt, index, size, p) {
				err := merkle.VerifyInclusion(bad.leafHash, bad.index, bad.size, bad.root, bad.proof)
				if !errors.Is(err, merkle.ErrBadProof) {
					t.Fatalf("inclusion %d in %d, %s: VerifyInclusion = %v, want ErrBadProof", index, size, bad.what, err)
				}
			}
		}
	}
}

type badInclusion struct {
	what        string
	leafHash    merkle.Hash
	index, size uint64
	root        merkle.Hash
	proof       []merkle.Hash
}

// badInclusions returns variants of the good inclusion proof p of index in
// size that must not verify.
func badInclusions(rt *refTree, index, size int, p []merkle.Hash) []badInclusion {
	good := badInclusion{leafHash: rt.hashes[index], index: uint64(index), size: uint64(size), root: rt.root(size), proof: p}
	var out []badInclusion
	add := func(what string, f func(*badInclusion)) {
		b := good
		b.what = what
		b.proof = append([]merkle.Hash(nil), p...)
		f(&b)
		out = append(out, b)
	}
	for i := range p {
		for _, bit := range []int{0, 7*i + 3, 255} {
			add(fmt.Sprintf("bit %d of hash %d flipped", bit, i), func(b *badInclusion) { b.proof[i][bit/8] ^= 1 << (bit % 8) })
		}
	}
	add("leaf hash bit flipped", func(b *badInclusion) { b.leafHash[5] ^= 0x10 })
	add("root bit flipped", func(b *badInclusion) { b.root[31] ^= 1 })
	add("size+1 with that root", func(b *badInclusion) { b.size++; b.root = rt.root(size + 1) })
	if size-1 > index {
		add("size-1 with that root", func(b *badInclusion) { b.size--; b.root = rt.root(size - 1) })
	}
	add("index == size", func(b *badInclusion) { b.index = uint64(size) })
	add("huge index", func(b *badInclusion) { b.index = 1<<64 - 1 })
	add("size 0", func(b *badInclusion) { b.size = 0 })
	if size > 1 {
		other := (index + 1) % size
		add("wrong index", func(b *badInclusion) { b.index = uint64(other) })
		add("another leaf's hash", func(b *badInclusion) { b.leafHash = rt.hashes[other] })
	}
	if len(p) > 0 {
		add("truncated", func(b *badInclusion) { b.proof = b.proof[:len(b.proof)-1] })
		add("first hash dropped", func(b *badInclusion) { b.proof = b.proof[1:] })
	}
	add("extended", func(b *badInclusion) { b.proof = append(b.proof, rt.root(size)) })
	add("extended with zero hash", func(b *badInclusion) { b.proof = append(b.proof, merkle.Hash{}) })
	return out
}

func TestVerifyConsistencyExhaustive(t *testing.T) {
	rt := newRefTree(t, distinctLeaves(maxExhaustive+1))
	for newSize := 0; newSize <= maxExhaustive; newSize++ {
		for oldSize := 0; oldSize <= newSize; oldSize++ {
			oldRoot, newRoot := rt.root(oldSize), rt.root(newSize)
			p := rt.consistency(oldSize, newSize)
			if oldSize > 0 {
				tp, err := tlog.ProveTree(int64(newSize), int64(oldSize), rt)
				if err != nil {
					t.Fatalf("tlog.ProveTree(%d, %d): %v", newSize, oldSize, err)
				}
				if !equalHashes(fromTlog(tp), p) {
					t.Fatalf("consistency %d to %d: reference proof %v, tlog proof %v", oldSize, newSize, p, tp)
				}
				if err := tlog.CheckTree(toTlog(p), int64(newSize), tlog.Hash(newRoot), int64(oldSize), tlog.Hash(oldRoot)); err != nil {
					t.Fatalf("consistency %d to %d: tlog.CheckTree: %v", oldSize, newSize, err)
				}
			}
			if err := merkle.VerifyConsistency(uint64(oldSize), uint64(newSize), oldRoot, newRoot, p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d) of a good proof: %v", oldSize, newSize, err)
			}
			for _, bad := range badConsistencies(rt, oldSize, newSize, p) {
				err := merkle.VerifyConsistency(bad.oldSize, bad.newSize, bad.oldRoot, bad.newRoot, bad.proof)
				if !errors.Is(err, merkle.ErrBadProof) {
					t.Fatalf("consistency %d to %d, %s: VerifyConsistency = %v, want ErrBadProof", oldSize, newSize, bad.what, err)
				}
			}
		}
	}
}

type badConsistency struct {
	what             string
	oldSize, newSize uint64
	oldRoot, newRoot merkle.Hash
	proof            []merkle.Hash
}

// badConsistencies returns variants of the good consistency proof p that
// must not verify.
func badConsistencies(rt *refTree, oldSize, newSize int, p []merkle.Hash) []badConsistency {
	good := badConsistency{oldSize: uint64(oldSize), newSize: uint64(newSize), oldRoot: rt.root(oldSize), newRoot: rt.root(newSize), proof: p}
	var out []badConsistency
	add := func(what string, f func(*badConsistency)) {
		b := good
		b.what = what
		b.proof = append([]merkle.Hash(nil), p...)
		f(&b)
		out = append(out, b)
	}
	for i := range p {
		for _, bit := range []int{0, 11*i + 1, 255} {
			add(fmt.Sprintf("bit %d of hash %d flipped", bit, i), func(b *badConsistency) { b.proof[i][bit/8] ^= 1 << (bit % 8) })
		}
	}
	add("old root bit flipped", func(b *badConsistency) { b.oldRoot[0] ^= 0x80 })
	if oldSize == 0 {
		// Every tree extends the empty one: only the old root, the
		// (necessarily empty) proof and, for 0 to 0, the new root can be
		// wrong.
		if newSize == 0 {
			add("new root bit flipped", func(b *badConsistency) { b.newRoot[17] ^= 4 })
		}
		add("extended", func(b *badConsistency) { b.proof = append(b.proof, rt.root(newSize)) })
		return out
	}
	add("new root bit flipped", func(b *badConsistency) { b.newRoot[17] ^= 4 })
	add("new size+1 with that root", func(b *badConsistency) { b.newSize++; b.newRoot = rt.root(newSize + 1) })
	if newSize-1 >= oldSize && newSize > 0 {
		add("new size-1 with that root", func(b *badConsistency) { b.newSize--; b.newRoot = rt.root(newSize - 1) })
	}
	if oldSize+1 <= newSize {
		add("old size+1 with that root", func(b *badConsistency) { b.oldSize++; b.oldRoot = rt.root(oldSize + 1) })
	}
	if oldSize > 1 { // 0 to newSize is always consistent
		add("old size-1 with that root", func(b *badConsistency) { b.oldSize--; b.oldRoot = rt.root(oldSize - 1) })
	}
	if oldSize < newSize {
		add("sizes swapped", func(b *badConsistency) {
			b.oldSize, b.newSize, b.oldRoot, b.newRoot = b.newSize, b.oldSize, b.newRoot, b.oldRoot
		})
	}
	if len(p) > 0 {
		add("truncated", func(b *badConsistency) { b.proof = b.proof[:len(b.proof)-1] })
		add("first hash dropped", func(b *badConsistency) { b.proof = b.proof[1:] })
	}
	add("extended", func(b *badConsistency) { b.proof = append(b.proof, rt.root(newSize)) })
	return out
}

func TestVerifyEdgeCases(t *testing.T) {
	rt := newRefTree(t, distinctLeaves(4))
	empty := merkle.EmptyRoot()
	tests := []struct {
		name string
		err  error
	}{
		{"inclusion in the empty tree", merkle.VerifyInclusion(rt.hashes[0], 0, 0, empty, nil)},
		{"consistency 0 to 0 with a non-empty new root", merkle.VerifyConsistency(0, 0, empty, rt.root(1), nil)},
		{"consistency 0 to 0 with a non-empty old root", merkle.VerifyConsistency(0, 0, rt.root(1), rt.root(1), nil)},
		{"consistency 0 to 2 with a non-empty old root", merkle.VerifyConsistency(0, 2, rt.root(1), rt.root(2), nil)},
		{"consistency 0 to 2 with a non-empty proof", merkle.VerifyConsistency(0, 2, empty, rt.root(2), []merkle.Hash{rt.root(2)})},
		{"consistency 3 to 2", merkle.VerifyConsistency(3, 2, rt.root(3), rt.root(2), rt.consistency(2, 3))},
		{"consistency 2 to 2 with different roots", merkle.VerifyConsistency(2, 2, rt.root(2), rt.root(3), nil)},
		{"consistency 2 to 2 with a non-empty proof", merkle.VerifyConsistency(2, 2, rt.root(2), rt.root(2), []merkle.Hash{rt.root(2)})},
		{"consistency to a huge size", merkle.VerifyConsistency(2, 1<<64-1, rt.root(2), rt.root(3), rt.consistency(2, 3))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !errors.Is(tc.err, merkle.ErrBadProof) {
				t.Errorf("got %v, want ErrBadProof", tc.err)
			}
		})
	}
	// The empty tree is consistent with every tree, with an empty proof.
	for n := range 5 {
		if err := merkle.VerifyConsistency(0, uint64(n), empty, rt.root(n), nil); err != nil {
			t.Errorf("VerifyConsistency(0, %d): %v", n, err)
		}
	}
}
