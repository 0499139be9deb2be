package merkle

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

// A Proof is a C2SP tlog-proof@v1: an inclusion proof of one entry together
// with the signed checkpoint it leads to, checkable offline.
type Proof struct {
	Index      uint64
	Hashes     []Hash
	Checkpoint []byte // the signed checkpoint note, verbatim
}

// FormatProof encodes p as a C2SP tlog-proof@v1, with no extra data.
//
// It writes what the transparency-dev formats library's Marshal writes
// (TestFormatProofMatchesLibrary checks), in one buffer: every accepted
// event's receipt carries a proof, and the library's formatted printing
// cost about as much as the rest of the receipt.
func FormatProof(p Proof) []byte {
	b := make([]byte, 0, len(canonicalProofHeader)+20+1+len(p.Hashes)*(hashLine+1)+1+len(p.Checkpoint))
	b = append(b, canonicalProofHeader...)
	b = strconv.AppendUint(b, p.Index, 10)
	b = append(b, '\n')
	for _, h := range p.Hashes {
		b = base64.StdEncoding.AppendEncode(b, h[:])
		b = append(b, '\n')
	}
	b = append(b, '\n')
	return append(b, p.Checkpoint...)
}

// formatProofLibrary is FormatProof the library's way.
func formatProofLibrary(p Proof) []byte {
	tp := proof.TLogProof{Index: p.Index, Checkpoint: p.Checkpoint, Hashes: make([][32]byte, 0, len(p.Hashes))}
	for _, h := range p.Hashes {
		tp.Hashes = append(tp.Hashes, h)
	}
	return tp.Marshal()
}

// ParseProof decodes a C2SP tlog-proof@v1. It accepts only the canonical
// encoding (no extra data, no leading zeroes, nothing trailing), so a proof
// has exactly one byte form. Its errors match ErrBadProof. It does not verify
// anything: see VerifyProof.
func ParseProof(b []byte) (Proof, error) {
	if p, ok := parseCanonicalProof(b); ok {
		return p, nil
	}
	return parseProof(b)
}

// parseProof is ParseProof the library's way: decode, then check that
// encoding the result gives b back.
func parseProof(b []byte) (Proof, error) {
	var tp proof.TLogProof
	if err := tp.Unmarshal(b); err != nil {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: %v", ErrBadProof, err)
	}
	if tp.ExtraData != nil {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: unexpected extra data", ErrBadProof)
	}
	p := Proof{Index: tp.Index, Checkpoint: tp.Checkpoint}
	for _, h := range tp.Hashes {
		p.Hashes = append(p.Hashes, Hash(h))
	}
	if !bytes.Equal(formatProofLibrary(p), b) {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: not in canonical form", ErrBadProof)
	}
	return p, nil
}

// canonicalProofHeader starts every proof FormatProof writes.
const canonicalProofHeader = "c2sp.org/tlog-proof@v1\nindex "

// hashLine is the length of a hash's line in a proof, newline aside: a
// SHA-256 hash in base64.
const hashLine = 44

// parseCanonicalProof reads b in one pass if it is exactly what
// FormatProof writes, and reports whether it was; anything else is left to
// parseProof, which decides. A bundle carries a proof for every entry, and
// the library's reader and the re-encoding cost more than the inclusion
// proof's hashing. FuzzParseCanonicalProof checks that whatever this
// accepts, parseProof accepts alike.
func parseCanonicalProof(b []byte) (Proof, bool) {
	// The library reads lines of at most 64 KiB: leave longer proofs to it.
	if len(b) > 60000 || !bytes.HasPrefix(b, []byte(canonicalProofHeader)) {
		return Proof{}, false
	}
	rest := b[len(canonicalProofHeader):]
	nl := bytes.IndexByte(rest, '\n')
	if nl < 1 || nl > 20 || (rest[0] == '0' && nl > 1) {
		return Proof{}, false
	}
	index, err := strconv.ParseUint(string(rest[:nl]), 10, 64)
	if err != nil {
		return Proof{}, false
	}
	rest = rest[nl+1:]
	p := Proof{Index: index, Hashes: make([]Hash, 0, len(rest)/(hashLine+1))}
	for {
		if len(rest) > 0 && rest[0] == '\n' {
			rest = rest[1:]
			break
		}
		if len(rest) < hashLine+1 || rest[hashLine] != '\n' {
			return Proof{}, false
		}
		var raw [33]byte
		var again [hashLine]byte
		if n, err := base64.StdEncoding.Decode(raw[:], rest[:hashLine]); err != nil || n != HashSize {
			return Proof{}, false
		}
		// One encoding only: the unused bits of the last digit are zero.
		if base64.StdEncoding.Encode(again[:], raw[:HashSize]); !bytes.Equal(again[:], rest[:hashLine]) {
			return Proof{}, false
		}
		p.Hashes = append(p.Hashes, Hash(raw[:HashSize]))
		rest = rest[hashLine+1:]
	}
	// The checkpoint is the rest, lines that each end in "\n" and hold no
	// "\r" (the library's reader drops one before "\n").
	if len(rest) == 0 || rest[len(rest)-1] != '\n' || bytes.IndexByte(rest, '\r') >= 0 {
		return Proof{}, false
	}
	p.Checkpoint = bytes.Clone(rest)
	return p, true
}

// VerifyProof checks that the tlog-proof b proves leaf is in the log with
// the given origin, under a checkpoint signed by verifier. It returns the
// checkpoint and the leaf's index. Its errors match ErrBadCheckpoint if the
// checkpoint does not verify, and ErrBadProof otherwise.
func VerifyProof(b, leaf []byte, origin string, verifier note.Verifier) (Checkpoint, uint64, error) {
	p, err := ParseProof(b)
	if err != nil {
		return Checkpoint{}, 0, err
	}
	cp, err := ParseCheckpoint(p.Checkpoint, origin, verifier)
	if err != nil {
		return Checkpoint{}, 0, err
	}
	if err := VerifyInclusion(LeafHash(leaf), p.Index, cp.Size, cp.Root, p.Hashes); err != nil {
		return Checkpoint{}, 0, err
	}
	return cp, p.Index, nil
}
