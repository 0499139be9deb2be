package merkle_test

import (
	"math/bits"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// refTree is a deliberately naive RFC 6962 tree written straight from the
// definitions of MTH, PATH and PROOF in RFC 6962 section 2.1, using only
// merkle.LeafHash and merkle.NodeHash. Tests compare the package against it
// and against golang.org/x/mod/sumdb/tlog.
type refTree struct {
	leaves [][]byte
	hashes []merkle.Hash // leaf hashes
	memo   map[[2]int]merkle.Hash

	stored []tlog.Hash // tlog stored hashes of the same leaves
}

func newRefTree(t testing.TB, leaves [][]byte) *refTree {
	t.Helper()
	rt := &refTree{leaves: leaves, memo: make(map[[2]int]merkle.Hash)}
	for i, l := range leaves {
		rt.hashes = append(rt.hashes, merkle.LeafHash(l))
		hs, err := tlog.StoredHashes(int64(i), l, rt)
		if err != nil {
			t.Fatalf("tlog.StoredHashes(%d): %v", i, err)
		}
		rt.stored = append(rt.stored, hs...)
	}
	return rt
}

// distinctLeaves returns n distinct leaves.
func distinctLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte{byte(i >> 8), byte(i), 'l', 'e', 'a', 'f'}
	}
	return out
}

// ReadHashes implements tlog.HashReader over the stored hashes.
func (rt *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = rt.stored[x]
	}
	return out, nil
}

// split returns the largest power of two smaller than n (n > 1).
func split(n int) int { return 1 << (bits.Len(uint(n-1)) - 1) }

// mth is MTH(D[lo:hi]).
func (rt *refTree) mth(lo, hi int) merkle.Hash {
	switch hi - lo {
	case 0:
		return merkle.EmptyRoot()
	case 1:
		return rt.hashes[lo]
	}
	if h, ok := rt.memo[[2]int{lo, hi}]; ok {
		return h
	}
	k := split(hi - lo)
	h := merkle.NodeHash(rt.mth(lo, lo+k), rt.mth(lo+k, hi))
	rt.memo[[2]int{lo, hi}] = h
	return h
}

func (rt *refTree) root(n int) merkle.Hash { return rt.mth(0, n) }

// path is PATH(m, D[lo:hi]), with m relative to lo.
func (rt *refTree) path(m, lo, hi int) []merkle.Hash {
	if hi-lo <= 1 {
		return nil
	}
	k := split(hi - lo)
	if m < k {
		return append(rt.path(m, lo, lo+k), rt.mth(lo+k, hi))
	}
	return append(rt.path(m-k, lo+k, hi), rt.mth(lo, lo+k))
}

func (rt *refTree) inclusion(index, size int) []merkle.Hash { return rt.path(index, 0, size) }

// subproof is SUBPROOF(m, D[lo:hi], b).
func (rt *refTree) subproof(m, lo, hi int, b bool) []merkle.Hash {
	n := hi - lo
	if m == n {
		if b {
			return nil
		}
		return []merkle.Hash{rt.mth(lo, hi)}
	}
	k := split(n)
	if m <= k {
		return append(rt.subproof(m, lo, lo+k, b), rt.mth(lo+k, hi))
	}
	return append(rt.subproof(m-k, lo+k, hi, false), rt.mth(lo, lo+k))
}

func (rt *refTree) consistency(oldSize, newSize int) []merkle.Hash {
	if oldSize == 0 {
		return nil
	}
	return rt.subproof(oldSize, 0, newSize, true)
}

func toTlog(p []merkle.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}

func fromTlog(p []tlog.Hash) []merkle.Hash {
	out := make([]merkle.Hash, len(p))
	for i, h := range p {
		out[i] = merkle.Hash(h)
	}
	return out
}

func equalHashes(a, b []merkle.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
