package provenance

import (
	"math/bits"
	"slices"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
)

// A sparseTree is an RFC 6962 tree of size leaves in which only a few
// leaves are real; every other leaf is the same filler. It computes roots
// and inclusion proofs of huge trees (1<<20 leaves and more) cheaply,
// because a perfect subtree of filler leaves has one hash per height.
type sparseTree struct {
	size   uint64
	real   []uint64 // sorted indices of real leaves
	hashes map[uint64]merkle.Hash
	filler []merkle.Hash // filler[h]: root of a perfect filler subtree of height h
}

func newSparseTree(size uint64, leaves map[uint64][]byte) *sparseTree {
	t := &sparseTree{size: size, hashes: map[uint64]merkle.Hash{}}
	for i, l := range leaves {
		t.real = append(t.real, i)
		t.hashes[i] = merkle.LeafHash(l)
	}
	slices.Sort(t.real)
	t.filler = []merkle.Hash{merkle.LeafHash([]byte("filler"))}
	for h := 1; h <= 64; h++ {
		t.filler = append(t.filler, merkle.NodeHash(t.filler[h-1], t.filler[h-1]))
	}
	return t
}

// mth is RFC 6962's MTH(D[lo:hi]).
func (t *sparseTree) mth(lo, hi uint64) merkle.Hash {
	n := hi - lo
	if i, _ := slices.BinarySearch(t.real, lo); (i == len(t.real) || t.real[i] >= hi) && n&(n-1) == 0 {
		return t.filler[bits.TrailingZeros64(n)]
	}
	if n == 1 {
		return t.hashes[lo]
	}
	k := uint64(1) << (bits.Len64(n-1) - 1) // largest power of 2 below n
	return merkle.NodeHash(t.mth(lo, lo+k), t.mth(lo+k, hi))
}

func (t *sparseTree) root() merkle.Hash { return t.mth(0, t.size) }

// proof is RFC 6962's PATH(m, D[0:size]).
func (t *sparseTree) proof(m uint64) []merkle.Hash {
	var path []merkle.Hash
	var walk func(m, lo, hi uint64)
	walk = func(m, lo, hi uint64) {
		n := hi - lo
		if n == 1 {
			return
		}
		k := uint64(1) << (bits.Len64(n-1) - 1)
		if m < k {
			walk(m, lo, lo+k)
			path = append(path, t.mth(lo+k, hi))
		} else {
			walk(m-k, lo+k, hi)
			path = append(path, t.mth(lo, lo+k))
		}
	}
	walk(m, 0, t.size)
	return path
}

func TestSparseTreeMatchesReference(t *testing.T) {
	for _, size := range []uint64{1, 2, 3, 7, 8, 13, 64, 100} {
		ref := testonly.New(rfc6962.DefaultHasher)
		leaves := map[uint64][]byte{}
		for i := range size {
			l := []byte("filler")
			if i%3 == 1 {
				l = []byte{byte(i), 'x'}
				leaves[i] = l
			}
			ref.AppendData(l)
		}
		st := newSparseTree(size, leaves)
		if got := st.root(); got != merkle.Hash(ref.Hash()) {
			t.Fatalf("size %d: root differs", size)
		}
		for i := range size {
			want, err := ref.InclusionProof(i, size)
			if err != nil {
				t.Fatal(err)
			}
			got := st.proof(i)
			if len(got) != len(want) {
				t.Fatalf("size %d index %d: proof has %d hashes, want %d", size, i, len(got), len(want))
			}
			for j := range got {
				if got[j] != merkle.Hash(want[j]) {
					t.Fatalf("size %d index %d: proof differs at %d", size, i, j)
				}
			}
		}
	}
}
