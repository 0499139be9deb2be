package merkle_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/rfc6962"
)

// vectors is the content of testdata/rfc6962_vectors.json.
type vectors struct {
	Leaves      []hexBytes     `json:"leaves"`
	Nodes       [][]hexHash    `json:"nodes"` // by level, then index
	Roots       []hexHash      `json:"roots"` // by tree size, from 0
	Inclusion   []inclusionKAT `json:"inclusion"`
	Consistency []consistKAT   `json:"consistency"`
}

type inclusionKAT struct {
	Index uint64    `json:"index"`
	Size  uint64    `json:"size"`
	Proof []hexHash `json:"proof"`
}

type consistKAT struct {
	Old   uint64    `json:"old"`
	New   uint64    `json:"new"`
	Proof []hexHash `json:"proof"`
}

type hexBytes []byte

func (b *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*b = raw
	return nil
}

type hexHash merkle.Hash

func (h *hexHash) UnmarshalJSON(data []byte) error {
	var b hexBytes
	if err := b.UnmarshalJSON(data); err != nil {
		return err
	}
	if len(b) != merkle.HashSize {
		return fmt.Errorf("hash %x has %d bytes", []byte(b), len(b))
	}
	*h = hexHash(b)
	return nil
}

func hashes(hs []hexHash) []merkle.Hash {
	out := make([]merkle.Hash, len(hs))
	for i, h := range hs {
		out[i] = merkle.Hash(h)
	}
	return out
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rfc6962_vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("parse vectors: %v", err)
	}
	if len(v.Leaves) != 8 || len(v.Roots) != 9 || len(v.Nodes) != 4 {
		t.Fatalf("vectors: %d leaves, %d roots, %d levels; want 8, 9, 4", len(v.Leaves), len(v.Roots), len(v.Nodes))
	}
	return v
}

func TestEmptyRootKAT(t *testing.T) {
	v := loadVectors(t)
	if got, want := merkle.EmptyRoot(), merkle.Hash(v.Roots[0]); got != want {
		t.Errorf("EmptyRoot() = %v, want %v", got, want)
	}
}

func TestLeafHashKAT(t *testing.T) {
	v := loadVectors(t)
	for i, leaf := range v.Leaves {
		t.Run(fmt.Sprintf("leaf%d", i), func(t *testing.T) {
			if got, want := merkle.LeafHash(leaf), merkle.Hash(v.Nodes[0][i]); got != want {
				t.Errorf("LeafHash(%x) = %v, want %v", []byte(leaf), got, want)
			}
		})
	}
}

func TestNodeHashKAT(t *testing.T) {
	v := loadVectors(t)
	for level := 1; level < len(v.Nodes); level++ {
		for i, want := range v.Nodes[level] {
			l, r := merkle.Hash(v.Nodes[level-1][2*i]), merkle.Hash(v.Nodes[level-1][2*i+1])
			if got := merkle.NodeHash(l, r); got != merkle.Hash(want) {
				t.Errorf("level %d node %d: NodeHash = %v, want %v", level, i, got, merkle.Hash(want))
			}
		}
	}
}

// TestHashesMatchLibrary checks the hashing this module uses (x/mod's
// tlog, which does not allocate) against transparency-dev's RFC 6962
// hasher on random leaves of every length up to two blocks and random
// nodes, and HashChildren on inputs that are not 32-byte hashes.
func TestHashesMatchLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(6962, 1))
	lib := rfc6962.DefaultHasher
	for n := range 200 {
		leaf := make([]byte, n)
		for i := range leaf {
			leaf[i] = byte(rng.Uint32())
		}
		if got, want := merkle.LeafHash(leaf), merkle.Hash(lib.HashLeaf(leaf)); got != want {
			t.Fatalf("LeafHash of %d bytes = %v, library %v", n, got, want)
		}
	}
	for range 200 {
		var l, r merkle.Hash
		for i := range l {
			l[i], r[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		want := lib.HashChildren(l[:], r[:])
		if got := merkle.NodeHash(l, r); got != merkle.Hash(want) {
			t.Fatalf("NodeHash(%v, %v) = %v, library %x", l, r, got, want)
		}
		if got := merkle.HashChildren(l[:], r[:]); string(got) != string(want) {
			t.Fatalf("HashChildren(%v, %v) = %x, library %x", l, r, got, want)
		}
	}
	for _, c := range [][2][]byte{{nil, nil}, {[]byte("short"), make([]byte, 32)}, {make([]byte, 33), make([]byte, 32)}} {
		if got, want := merkle.HashChildren(c[0], c[1]), lib.HashChildren(c[0], c[1]); string(got) != string(want) {
			t.Errorf("HashChildren of %d and %d bytes = %x, library %x", len(c[0]), len(c[1]), got, want)
		}
	}
}

// TestHashesDoNotAllocate: the log hashes several nodes an event.
func TestHashesDoNotAllocate(t *testing.T) {
	leaf := make([]byte, 450)
	var l, r merkle.Hash
	if n := testing.AllocsPerRun(100, func() { l = merkle.LeafHash(leaf); r = merkle.NodeHash(l, r) }); n != 0 {
		t.Errorf("LeafHash and NodeHash: %v allocations, want 0", n)
	}
}

func TestRootKAT(t *testing.T) {
	v := loadVectors(t)
	rt := newRefTree(t, bytesOf(v.Leaves))
	for n, want := range v.Roots {
		t.Run(fmt.Sprintf("size%d", n), func(t *testing.T) {
			if got := rt.root(n); got != merkle.Hash(want) {
				t.Errorf("root of %d leaves built from LeafHash/NodeHash = %v, want %v", n, got, merkle.Hash(want))
			}
		})
	}
}

func TestInclusionKAT(t *testing.T) {
	v := loadVectors(t)
	for _, tc := range v.Inclusion {
		t.Run(fmt.Sprintf("%d_in_%d", tc.Index, tc.Size), func(t *testing.T) {
			leafHash := merkle.LeafHash(v.Leaves[tc.Index])
			root := merkle.Hash(v.Roots[tc.Size])
			p := hashes(tc.Proof)
			if err := merkle.VerifyInclusion(leafHash, tc.Index, tc.Size, root, p); err != nil {
				t.Fatalf("VerifyInclusion of published proof: %v", err)
			}
			// The reference tree built from our hashes produces the same proof.
			rt := newRefTree(t, bytesOf(v.Leaves))
			if got := rt.inclusion(int(tc.Index), int(tc.Size)); !equalHashes(got, p) {
				t.Errorf("reference proof = %v, published %v", got, p)
			}
			if tc.Size > 1 {
				wrong := merkle.Hash(v.Roots[tc.Size-1])
				if err := merkle.VerifyInclusion(leafHash, tc.Index, tc.Size, wrong, p); !errors.Is(err, merkle.ErrBadProof) {
					t.Errorf("VerifyInclusion against the root of size %d = %v, want ErrBadProof", tc.Size-1, err)
				}
			}
		})
	}
}

func TestConsistencyKAT(t *testing.T) {
	v := loadVectors(t)
	rt := newRefTree(t, bytesOf(v.Leaves))
	for _, tc := range v.Consistency {
		t.Run(fmt.Sprintf("%d_to_%d", tc.Old, tc.New), func(t *testing.T) {
			p := hashes(tc.Proof)
			oldRoot, newRoot := merkle.Hash(v.Roots[tc.Old]), merkle.Hash(v.Roots[tc.New])
			if err := merkle.VerifyConsistency(tc.Old, tc.New, oldRoot, newRoot, p); err != nil {
				t.Fatalf("VerifyConsistency of published proof: %v", err)
			}
			if got := rt.consistency(int(tc.Old), int(tc.New)); !equalHashes(got, p) {
				t.Errorf("reference proof = %v, published %v", got, p)
			}
			if err := merkle.VerifyConsistency(tc.Old, tc.New, newRoot, oldRoot, p); tc.Old != tc.New && !errors.Is(err, merkle.ErrBadProof) {
				t.Errorf("VerifyConsistency with swapped roots = %v, want ErrBadProof", err)
			}
		})
	}
}

func bytesOf(bs []hexBytes) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = b
	}
	return out
}

func TestParseHash(t *testing.T) {
	h := merkle.LeafHash([]byte("x"))
	got, err := merkle.ParseHash(h.String())
	if err != nil || got != h {
		t.Fatalf("ParseHash(%q) = %v, %v; want %v", h.String(), got, err, h)
	}
	for _, s := range []string{
		"",
		"not base64!",
		h.String()[:40],     // short
		h.String() + "AAAA", // long
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=", // non-zero padding bits: not canonical
		h.String()[:42] + "==",                         // wrong length
		h.String()[:43],                                // missing padding
	} {
		if _, err := merkle.ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q) succeeded, want error", s)
		}
	}
}
