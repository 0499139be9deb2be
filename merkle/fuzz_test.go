package merkle_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
)

const fuzzOrigin = "fuzz.example/log"

// fuzzTreeSize is the size of the reference tree the verifier fuzzers
// compare against.
const fuzzTreeSize = 16

func fuzzTree(t testing.TB) *refTree {
	t.Helper()
	return newRefTree(t, distinctLeaves(fuzzTreeSize))
}

// fuzzProofs returns valid tlog-proofs signed by the fixed fuzz key, and the
// leaves they prove.
func fuzzProofs(t testing.TB) (proofs [][]byte, leaves [][]byte) {
	t.Helper()
	signer, _ := fixedKey(fuzzOrigin)
	rt := fuzzTree(t)
	for _, c := range []struct{ index, size int }{{0, 1}, {2, 3}, {5, 8}, {15, 16}, {9, 13}} {
		cp, err := merkle.SignCheckpoint(signer, fuzzOrigin, uint64(c.size), rt.root(c.size))
		if err != nil {
			t.Fatal(err)
		}
		p := merkle.Proof{Index: uint64(c.index), Hashes: rt.inclusion(c.index, c.size), Checkpoint: cp.Note}
		proofs = append(proofs, merkle.FormatProof(p))
		leaves = append(leaves, rt.leaves[c.index])
	}
	return proofs, leaves
}

func FuzzParseCheckpoint(f *testing.F) {
	signer, verifier := fixedKey(fuzzOrigin)
	rt := fuzzTree(f)
	for _, size := range []int{0, 1, 7, 16} {
		cp, err := merkle.SignCheckpoint(signer, fuzzOrigin, uint64(size), rt.root(size))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(cp.Note)
	}
	f.Add(signText(f, fuzzOrigin+"\n05\n"+rt.root(5).String()+"\n", signer))
	f.Add(signText(f, fuzzOrigin+"\n5\n"+rt.root(5).String()+"\nextension\n", signer))
	f.Add(signText(f, fuzzOrigin+"\n5\n", signer))
	f.Add([]byte(fuzzOrigin + "\n5\n" + rt.root(5).String() + "\n\n— " + fuzzOrigin + " AAAA\n"))
	f.Add([]byte{})
	cp, err := merkle.SignCheckpoint(signer, fuzzOrigin, 5, rt.root(5))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(otherBase64(cp.Note))
	f.Add(append(bytes.Clone(cp.Note), sigLines(otherBase64(cp.Note))...))
	f.Add(append(bytes.Clone(cp.Note), "— witness.example/w AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\n"...))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := merkle.ParseCheckpoint(msg, fuzzOrigin, verifier)
		if err != nil {
			if !errors.Is(err, merkle.ErrBadCheckpoint) {
				t.Fatalf("ParseCheckpoint error %v does not match ErrBadCheckpoint", err)
			}
			return
		}
		if cp.Origin != fuzzOrigin || !bytes.Equal(cp.Note, msg) {
			t.Fatalf("ParseCheckpoint = %+v for origin %q", cp, fuzzOrigin)
		}
		// Every signature line is in canonical base64.
		if canon := canonicalSigs(t, msg); !bytes.Equal(canon, msg) {
			t.Fatalf("ParseCheckpoint accepted %q, whose signatures are written %q", msg, canon)
		}
		// The body starts with the canonical encoding of the fields...
		body := fmt.Sprintf("%s\n%d\n%s\n", cp.Origin, cp.Size, cp.Root)
		if !bytes.HasPrefix(msg, []byte(body)) {
			t.Fatalf("checkpoint %q parsed as (%d, %v), whose canonical body is %q", msg, cp.Size, cp.Root, body)
		}
		// ...so signing the same fields again gives a checkpoint that parses
		// to the same fields.
		again, err := merkle.SignCheckpoint(signer, cp.Origin, cp.Size, cp.Root)
		if err != nil {
			t.Fatal(err)
		}
		cp2, err := merkle.ParseCheckpoint(again.Note, fuzzOrigin, verifier)
		if err != nil || cp2.Size != cp.Size || cp2.Root != cp.Root {
			t.Fatalf("re-signed checkpoint parses as %+v, %v; want size %d root %v", cp2, err, cp.Size, cp.Root)
		}
	})
}

func FuzzParseProof(f *testing.F) {
	proofs, _ := fuzzProofs(f)
	for _, p := range proofs {
		f.Add(p)
		f.Add(bytes.Replace(p, []byte("index "), []byte("index 0"), 1))
		f.Add(bytes.Replace(p, []byte("\nindex"), []byte("\nextra AAAA\nindex"), 1))
		f.Add(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
	}
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 18446744073709551615\n\nx\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := merkle.ParseProof(b)
		if err != nil {
			if !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("ParseProof error %v does not match ErrBadProof", err)
			}
			return
		}
		// Canonical: what parses formats back to the same bytes.
		out := merkle.FormatProof(p)
		if !bytes.Equal(out, b) {
			t.Fatalf("ParseProof(%q) = %+v, which formats as %q", b, p, out)
		}
		p2, err := merkle.ParseProof(out)
		if err != nil || p2.Index != p.Index || !equalHashes(p2.Hashes, p.Hashes) || !bytes.Equal(p2.Checkpoint, p.Checkpoint) {
			t.Fatalf("round trip of %+v gave %+v, %v", p, p2, err)
		}
	})
}

// FuzzFormatProof checks the formatter against the parser: a proof whose
// checkpoint is lines of text, each ending in a newline (as every signed
// note's), formats to bytes that parse back to the same proof.
func FuzzFormatProof(f *testing.F) {
	proofs, _ := fuzzProofs(f)
	for _, b := range proofs {
		p, err := merkle.ParseProof(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p.Index, joinHashes(p.Hashes), p.Checkpoint)
	}
	f.Add(uint64(0), []byte{}, []byte{})
	f.Add(uint64(1<<64-1), make([]byte, 3*merkle.HashSize), []byte("\nx\n\n"))
	f.Add(uint64(7), []byte{}, []byte("no newline"))
	f.Add(uint64(7), []byte{}, []byte("crlf\r\n"))
	f.Fuzz(func(t *testing.T, index uint64, hashes, checkpoint []byte) {
		hs, ok := splitHashes(hashes)
		if !ok {
			return
		}
		p := merkle.Proof{Index: index, Hashes: hs, Checkpoint: checkpoint}
		b := merkle.FormatProof(p)
		got, err := merkle.ParseProof(b)
		lines := len(checkpoint) == 0 || checkpoint[len(checkpoint)-1] == '\n' && !bytes.Contains(checkpoint, []byte("\r")) && len(checkpoint) < 60000
		switch {
		case err != nil && lines:
			t.Fatalf("FormatProof(%+v) = %q, which ParseProof refuses: %v", p, b, err)
		case err != nil:
			if !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("ParseProof error %v does not match ErrBadProof", err)
			}
		case got.Index != p.Index || !equalHashes(got.Hashes, p.Hashes) || !bytes.Equal(got.Checkpoint, p.Checkpoint):
			t.Fatalf("ParseProof(FormatProof(%+v)) = %+v", p, got)
		}
	})
}

func FuzzVerifyProof(f *testing.F) {
	_, verifier := fixedKey(fuzzOrigin)
	proofs, leaves := fuzzProofs(f)
	for i, p := range proofs {
		f.Add(p, leaves[i])
		f.Add(p, leaves[(i+1)%len(leaves)])
	}
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 0\n\n"), []byte("x"))
	f.Fuzz(func(t *testing.T, b, leaf []byte) {
		cp, index, err := merkle.VerifyProof(b, leaf, fuzzOrigin, verifier)
		if err != nil {
			if !errors.Is(err, merkle.ErrBadProof) && !errors.Is(err, merkle.ErrBadCheckpoint) {
				t.Fatalf("VerifyProof error %v matches neither ErrBadProof nor ErrBadCheckpoint", err)
			}
			return
		}
		// A verified proof's fields are consistent with each other.
		p, err := merkle.ParseProof(b)
		if err != nil {
			t.Fatalf("VerifyProof accepted %q, which ParseProof rejects: %v", b, err)
		}
		if p.Index != index || index >= cp.Size || !bytes.Equal(p.Checkpoint, cp.Note) {
			t.Fatalf("VerifyProof = (%+v, %d) for proof %+v", cp, index, p)
		}
		if _, err := merkle.ParseCheckpoint(cp.Note, fuzzOrigin, verifier); err != nil {
			t.Fatalf("VerifyProof returned a checkpoint that does not parse: %v", err)
		}
		if err := merkle.VerifyInclusion(merkle.LeafHash(leaf), index, cp.Size, cp.Root, p.Hashes); err != nil {
			t.Fatalf("VerifyProof accepted a proof VerifyInclusion rejects: %v", err)
		}
		// Every checkpoint the fixed key signed in the seeds is of the
		// reference tree, so a verified leaf is the reference leaf.
		rt := fuzzTree(t)
		if cp.Size <= fuzzTreeSize && cp.Root == rt.root(int(cp.Size)) && !bytes.Equal(leaf, rt.leaves[index]) {
			t.Fatalf("VerifyProof proved %q at index %d, where the tree holds %q", leaf, index, rt.leaves[index])
		}
	})
}

// splitHashes cuts b into hashes; ok is false if b is not a whole number of them.
func splitHashes(b []byte) (hs []merkle.Hash, ok bool) {
	if len(b)%merkle.HashSize != 0 {
		return nil, false
	}
	for len(b) > 0 {
		hs = append(hs, merkle.Hash(b[:merkle.HashSize]))
		b = b[merkle.HashSize:]
	}
	return hs, true
}

func joinHashes(hs []merkle.Hash) []byte {
	var b []byte
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

func FuzzVerifyInclusion(f *testing.F) {
	rt := fuzzTree(f)
	for _, c := range [][2]int{{0, 1}, {0, 2}, {1, 2}, {2, 3}, {5, 8}, {6, 7}, {15, 16}, {8, 9}, {3, 13}} {
		index, size := c[0], c[1]
		p := joinHashes(rt.inclusion(index, size))
		f.Add(uint64(index), uint64(size), rt.leaves[index], p)
		f.Add(uint64(index+1), uint64(size), rt.leaves[index], p)
		f.Add(uint64(index), uint64(size+1), rt.leaves[index], p)
		f.Add(uint64(index), uint64(size), rt.leaves[index], p[:max(0, len(p)-merkle.HashSize)])
	}
	f.Add(uint64(1<<64-1), uint64(1<<64-1), []byte("x"), make([]byte, 64*merkle.HashSize))
	f.Fuzz(func(t *testing.T, index, size uint64, leaf, proof []byte) {
		hs, ok := splitHashes(proof)
		if !ok || size > fuzzTreeSize || size == 0 {
			// Arbitrary sizes against an arbitrary root: must not panic.
			hs, _ = splitHashes(proof[:len(proof)/merkle.HashSize*merkle.HashSize])
			if err := merkle.VerifyInclusion(merkle.LeafHash(leaf), index, size, merkle.LeafHash(proof), hs); err != nil && !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("VerifyInclusion error %v does not match ErrBadProof", err)
			}
			return
		}
		err := merkle.VerifyInclusion(merkle.LeafHash(leaf), index, size, rt.root(int(size)), hs)
		if err != nil {
			if !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("VerifyInclusion error %v does not match ErrBadProof", err)
			}
			return
		}
		// Against a real root, only the real leaf with the real proof verifies.
		if !bytes.Equal(leaf, rt.leaves[index]) || !equalHashes(hs, rt.inclusion(int(index), int(size))) {
			t.Fatalf("VerifyInclusion accepted leaf %q at %d of %d with proof %v", leaf, index, size, hs)
		}
	})
}

func FuzzVerifyConsistency(f *testing.F) {
	rt := fuzzTree(f)
	for _, c := range [][2]int{{0, 0}, {0, 3}, {1, 1}, {1, 2}, {1, 8}, {2, 5}, {6, 8}, {6, 7}, {3, 16}, {7, 13}} {
		oldSize, newSize := c[0], c[1]
		p := joinHashes(rt.consistency(oldSize, newSize))
		f.Add(uint64(oldSize), uint64(newSize), p)
		f.Add(uint64(oldSize+1), uint64(newSize), p)
		f.Add(uint64(oldSize), uint64(newSize+1), p)
		f.Add(uint64(newSize), uint64(oldSize), p)
	}
	f.Add(uint64(1<<63), uint64(1<<64-1), make([]byte, 64*merkle.HashSize))
	f.Fuzz(func(t *testing.T, oldSize, newSize uint64, proof []byte) {
		hs, ok := splitHashes(proof)
		if !ok || newSize > fuzzTreeSize || oldSize > fuzzTreeSize {
			hs, _ = splitHashes(proof[:len(proof)/merkle.HashSize*merkle.HashSize])
			if err := merkle.VerifyConsistency(oldSize, newSize, merkle.LeafHash(proof), merkle.EmptyRoot(), hs); err != nil && !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("VerifyConsistency error %v does not match ErrBadProof", err)
			}
			return
		}
		err := merkle.VerifyConsistency(oldSize, newSize, rt.root(int(oldSize)), rt.root(int(newSize)), hs)
		if err != nil {
			if !errors.Is(err, merkle.ErrBadProof) {
				t.Fatalf("VerifyConsistency error %v does not match ErrBadProof", err)
			}
			return
		}
		// Against real roots, only the real proof verifies, and only
		// forwards.
		if oldSize > newSize || !equalHashes(hs, rt.consistency(int(oldSize), int(newSize))) {
			t.Fatalf("VerifyConsistency accepted %d -> %d with proof %v", oldSize, newSize, hs)
		}
	})
}

// sigLines returns the signature lines of a signed note.
func sigLines(msg []byte) []byte {
	return msg[bytes.LastIndex(msg, []byte("\n\n"))+2:]
}

// otherBase64 returns the signed note msg with the last base64 digit of
// its last signature line changed in the bits the decoder ignores: the
// same signature, spelled in a non-canonical way that note.Open accepts.
func otherBase64(msg []byte) []byte {
	out := bytes.Clone(msg)
	i := len(bytes.TrimRight(bytes.TrimSuffix(out, []byte("\n")), "=")) - 1
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out[i] = digits[strings.IndexByte(digits, out[i])^1]
	return out
}

// canonicalSigs returns the signed note msg with the base64 of each
// signature line decoded (leniently, as note.Open does) and encoded again.
func canonicalSigs(t testing.TB, msg []byte) []byte {
	t.Helper()
	split := bytes.LastIndex(msg, []byte("\n\n")) + 2
	out := bytes.Clone(msg[:split])
	for line := range strings.Lines(string(msg[split:])) {
		name, b64, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "\u2014 "), " ")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("signature line %q: %v", line, err)
		}
		out = fmt.Appendf(out, "\u2014 %s %s\n", name, base64.StdEncoding.EncodeToString(raw))
	}
	return out
}
