package merkle_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
)

// proofFixture is a real tlog-proof for leaf index of a tree of size leaves.
type proofFixture struct {
	key   testKey
	rt    *refTree
	cp    merkle.Checkpoint
	proof merkle.Proof
	leaf  []byte
	b     []byte // FormatProof(proof)
}

func newProofFixture(t testing.TB, key testKey, index, size int) proofFixture {
	t.Helper()
	rt := newRefTree(t, distinctLeaves(size))
	cp, err := merkle.SignCheckpoint(key.signer, testOrigin, uint64(size), rt.root(size))
	if err != nil {
		t.Fatal(err)
	}
	p := merkle.Proof{Index: uint64(index), Hashes: rt.inclusion(index, size), Checkpoint: cp.Note}
	return proofFixture{key: key, rt: rt, cp: cp, proof: p, leaf: rt.leaves[index], b: merkle.FormatProof(p)}
}

func TestProofRoundTrip(t *testing.T) {
	key := newTestKey(t, testOrigin)
	for _, c := range []struct{ index, size int }{{0, 1}, {0, 2}, {1, 2}, {3, 7}, {6, 7}, {12, 13}} {
		t.Run(fmt.Sprintf("%d_in_%d", c.index, c.size), func(t *testing.T) {
			f := newProofFixture(t, key, c.index, c.size)
			if !bytes.HasPrefix(f.b, []byte(fmt.Sprintf("c2sp.org/tlog-proof@v1\nindex %d\n", c.index))) {
				t.Errorf("FormatProof = %q, want a tlog-proof@v1 header and index line", f.b)
			}
			p, err := merkle.ParseProof(f.b)
			if err != nil {
				t.Fatalf("ParseProof(FormatProof(p)): %v", err)
			}
			if p.Index != f.proof.Index || !equalHashes(p.Hashes, f.proof.Hashes) || !bytes.Equal(p.Checkpoint, f.proof.Checkpoint) {
				t.Errorf("ParseProof = %+v, want %+v", p, f.proof)
			}
			cp, index, err := merkle.VerifyProof(f.b, f.leaf, testOrigin, key.verifier)
			if err != nil {
				t.Fatalf("VerifyProof: %v", err)
			}
			if index != uint64(c.index) || cp.Size != uint64(c.size) || cp.Root != f.rt.root(c.size) {
				t.Errorf("VerifyProof = (%d, %d, %v), want (%d, %d, %v)", index, cp.Size, cp.Root, c.index, c.size, f.rt.root(c.size))
			}
		})
	}
}

func TestParseProofRejects(t *testing.T) {
	key := newTestKey(t, testOrigin)
	f := newProofFixture(t, key, 3, 7)
	good := string(f.b)
	h0 := f.proof.Hashes[0].String()
	replace := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("fixture %q has no %q", good, old)
		}
		return []byte(strings.Replace(good, old, new, 1))
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"missing header", []byte(strings.TrimPrefix(good, "c2sp.org/tlog-proof@v1\n"))},
		{"other version", replace("tlog-proof@v1", "tlog-proof@v2")},
		{"leading zero in index", replace("index 3\n", "index 03\n")},
		{"plus sign in index", replace("index 3\n", "index +3\n")},
		{"negative index", replace("index 3\n", "index -3\n")},
		{"index overflows", replace("index 3\n", "index 18446744073709551616\n")},
		{"two spaces before index", replace("index 3\n", "index  3\n")},
		{"missing index", replace("index 3\n", "")},
		{"extra data", replace("index 3\n", "extra AAAA\nindex 3\n")},
		{"empty extra data", replace("index 3\n", "extra \nindex 3\n")},
		{"bad base64 hash", replace(h0, "!"+h0[1:])},
		{"hash without padding", replace(h0, h0[:43])},
		{"short hash", replace(h0, h0[:40]+"====")},
		{"long hash", replace(h0+"\n", h0+"\n"+"AAAA\n")},
		{"hash with non-zero padding bits", replace(h0, h0[:42]+string(h0[42]^1)+"=")},
		{"CRLF line endings", replace("index 3\n", "index 3\r\n")},
		{"no blank line before checkpoint", replace("\n\n", "\n")},
		{"checkpoint without final newline", f.b[:len(f.b)-1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.b, f.b) {
				t.Fatal("test case is the good proof")
			}
			p, err := merkle.ParseProof(tc.b)
			if !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("ParseProof(%q) = %+v, %v; want ErrBadProof", tc.b, p, err)
			}
			if _, _, err := merkle.VerifyProof(tc.b, f.leaf, testOrigin, key.verifier); !errors.Is(err, merkle.ErrBadProof) {
				t.Errorf("VerifyProof = %v; want ErrBadProof", err)
			}
		})
	}
}

func TestVerifyProofTampered(t *testing.T) {
	key := newTestKey(t, testOrigin)
	other := newTestKey(t, testOrigin)
	f := newProofFixture(t, key, 3, 7)
	withProof := func(edit func(*merkle.Proof)) []byte {
		p := f.proof
		p.Hashes = append([]merkle.Hash(nil), p.Hashes...)
		edit(&p)
		return merkle.FormatProof(p)
	}
	otherCP, err := merkle.SignCheckpoint(other.signer, testOrigin, f.cp.Size, f.cp.Root)
	if err != nil {
		t.Fatal(err)
	}
	biggerCP, err := merkle.SignCheckpoint(key.signer, testOrigin, 8, newRefTree(t, distinctLeaves(8)).root(8))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		b, leaf []byte
		origin  string
		want    error
	}{
		{"other leaf", f.b, f.rt.leaves[4], testOrigin, merkle.ErrBadProof},
		{"leaf with a byte added", f.b, append(bytes.Clone(f.leaf), 0), testOrigin, merkle.ErrBadProof},
		{"index+1", withProof(func(p *merkle.Proof) { p.Index++ }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"index beyond the checkpoint", withProof(func(p *merkle.Proof) { p.Index = 7 }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"flipped bit in hash 0", withProof(func(p *merkle.Proof) { p.Hashes[0][0] ^= 1 }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"flipped bit in last hash", withProof(func(p *merkle.Proof) { p.Hashes[len(p.Hashes)-1][31] ^= 0x80 }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"hash dropped", withProof(func(p *merkle.Proof) { p.Hashes = p.Hashes[1:] }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"hash added", withProof(func(p *merkle.Proof) { p.Hashes = append(p.Hashes, f.cp.Root) }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"checkpoint of a bigger tree", withProof(func(p *merkle.Proof) { p.Checkpoint = biggerCP.Note }), f.leaf, testOrigin, merkle.ErrBadProof},
		{"checkpoint signed by another key", withProof(func(p *merkle.Proof) { p.Checkpoint = otherCP.Note }), f.leaf, testOrigin, merkle.ErrBadCheckpoint},
		{"checkpoint missing", withProof(func(p *merkle.Proof) { p.Checkpoint = nil }), f.leaf, testOrigin, merkle.ErrBadCheckpoint},
		{"other origin", f.b, f.leaf, "other.example.com/log", merkle.ErrBadCheckpoint},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp, index, err := merkle.VerifyProof(tc.b, tc.leaf, tc.origin, key.verifier)
			if !errors.Is(err, tc.want) {
				t.Errorf("VerifyProof = (%+v, %d, %v), want %v", cp, index, err, tc.want)
			}
		})
	}
}
