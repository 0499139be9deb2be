package merkle

import (
	"bytes"
	"fmt"

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

// FormatProof encodes p as a C2SP tlog-proof@v1, with no extra data, with
// the transparency-dev formats library.
func FormatProof(p Proof) []byte {
	return toLibrary(p).Marshal()
}

func toLibrary(p Proof) proof.TLogProof {
	tp := proof.TLogProof{Index: p.Index, Checkpoint: p.Checkpoint, Hashes: make([][HashSize]byte, 0, len(p.Hashes))}
	for _, h := range p.Hashes {
		tp.Hashes = append(tp.Hashes, h)
	}
	return tp
}

// ParseProof decodes a C2SP tlog-proof@v1 with the transparency-dev formats
// library. It accepts only the canonical encoding, what FormatProof writes
// (no extra data, no leading zeroes, strict base64, nothing trailing), so a
// proof has exactly one byte form: the library's reader is lenient, so the
// proof it decodes must format back to b. Its errors match ErrBadProof. It
// does not verify anything: see VerifyProof.
func ParseProof(b []byte) (Proof, error) {
	var tp proof.TLogProof
	if err := tp.Unmarshal(b); err != nil {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: %v", ErrBadProof, err)
	}
	if tp.ExtraData != nil {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: unexpected extra data", ErrBadProof)
	}
	if !bytes.Equal(tp.Marshal(), b) {
		return Proof{}, fmt.Errorf("%w: parse tlog-proof: not in canonical form", ErrBadProof)
	}
	p := Proof{Index: tp.Index, Checkpoint: tp.Checkpoint, Hashes: make([]Hash, 0, len(tp.Hashes))}
	for _, h := range tp.Hashes {
		p.Hashes = append(p.Hashes, Hash(h))
	}
	return p, nil
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
