package merkle

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// FuzzParseCanonicalProof checks the fast reader against the library's:
// whatever parseCanonicalProof accepts, parseProof accepts with the same
// index, hashes and checkpoint; and every proof FormatProof writes (with a
// checkpoint of lines) takes the fast path.
func FuzzParseCanonicalProof(f *testing.F) {
	cp := "example.com/log\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u2014 example.com/log abcd\n"
	for _, n := range []int{0, 1, 20} {
		p := Proof{Index: uint64(n) * 1234567, Checkpoint: []byte(cp)}
		for i := range n {
			p.Hashes = append(p.Hashes, LeafHash([]byte{byte(i)}))
		}
		b := FormatProof(p)
		f.Add(b)
		f.Add(bytes.Replace(b, []byte("index "), []byte("index 0"), 1))
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(bytes.TrimSuffix(b, []byte("\n")))
		f.Add(bytes.Replace(b, []byte("=\n"), []byte("B\n"), 1))
	}
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 18446744073709551615\n\nx\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\nx\n"))
	f.Add([]byte("c2sp.org/tlog-proof@v1\nindex 1\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseCanonicalProof(b)
		slow, err := parseProof(b)
		if ok && (err != nil || fast.Index != slow.Index || !slices.Equal(fast.Hashes, slow.Hashes) || !bytes.Equal(fast.Checkpoint, slow.Checkpoint)) {
			t.Fatalf("fast reader accepts %q as %+v; the library's way: %+v, %v", b, fast, slow, err)
		}
		if err == nil && !bytes.Equal(FormatProof(slow), formatProofLibrary(slow)) {
			t.Fatalf("FormatProof(%+v) = %q, the library writes %q", slow, FormatProof(slow), formatProofLibrary(slow))
		}
		if err == nil && !ok && len(b) <= 60000 && len(slow.Checkpoint) > 0 && !strings.Contains(string(b), "\r") {
			t.Fatalf("a canonical proof %q took the slow path", b)
		}
	})
}

// TestFormatProofMatchesLibrary checks that FormatProof writes byte for
// byte what the transparency-dev formats library writes, for proofs of
// every length up to 64 hashes and indexes from 0 to the largest.
func TestFormatProofMatchesLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	indexes := []uint64{0, 1, 9, 10, math.MaxUint64}
	for n := range 65 {
		for _, index := range append(indexes, rng.Uint64(), rng.Uint64N(1000)) {
			p := Proof{Index: index, Hashes: make([]Hash, n)}
			for i := range p.Hashes {
				for j := range p.Hashes[i] {
					p.Hashes[i][j] = byte(rng.Uint32())
				}
			}
			if n%3 != 0 {
				p.Checkpoint = []byte(fmt.Sprintf("example.com/log\n%d\nroot\n\n\u2014 example.com/log sig%d\n", index, n))
			}
			if got, want := FormatProof(p), formatProofLibrary(p); !bytes.Equal(got, want) {
				t.Fatalf("FormatProof(%+v):\n%q\nthe library writes\n%q", p, got, want)
			}
		}
	}
}
