package merkle

import (
	"bytes"
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
		if err == nil && !ok && len(b) <= 60000 && len(slow.Checkpoint) > 0 && !strings.Contains(string(b), "\r") {
			t.Fatalf("a canonical proof %q took the slow path", b)
		}
	})
}
