package merkle

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

// A Checkpoint is a signed commitment to the state of a log: its origin, its
// size and its root hash, in the C2SP tlog-checkpoint form.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	// Note is the signed note exactly as published. Verifiers check it, not
	// the fields above.
	Note []byte
}

// ErrBadCheckpoint is matched by every error ParseCheckpoint returns for
// a checkpoint that is malformed, for another origin, or not signed by the
// expected key.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// SignCheckpoint returns the checkpoint for (origin, size, root) signed by
// signer. The signer's name should be the origin.
func SignCheckpoint(signer note.Signer, origin string, size uint64, root Hash) (Checkpoint, error) {
	body := log.Checkpoint{Origin: origin, Size: size, Hash: root[:]}
	msg, err := note.Sign(&note.Note{Text: string(body.Marshal())}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: origin, Size: size, Root: root, Note: msg}, nil
}

// ParseCheckpoint checks that msg is a checkpoint for origin signed by the
// log's verifier, with its size, root hash and the base64 of every
// signature line in canonical form, and returns it. Signatures by other
// keys are ignored, so a checkpoint carrying witness cosignatures parses
// too.
func ParseCheckpoint(msg []byte, origin string, verifier note.Verifier) (Checkpoint, error) {
	cp, _, n, err := log.ParseCheckpoint(msg, origin, verifier)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if err := checkSigEncoding(msg, n.Text); err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrBadCheckpoint, err)
	}
	if len(cp.Hash) != HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root hash has %d bytes", ErrBadCheckpoint, len(cp.Hash))
	}
	// The size and root have one encoding each (no leading zeroes, strict
	// base64), so two checkpoints for the same tree never differ in text.
	if !strings.HasPrefix(n.Text, string(cp.Marshal())) {
		return Checkpoint{}, fmt.Errorf("%w: size or root hash not in canonical form", ErrBadCheckpoint)
	}
	return Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: Hash(cp.Hash), Note: msg}, nil
}

// checkSigEncoding checks that every signature line of the signed note msg,
// whose text note.Open found to be text, holds canonical base64: note.Open
// decodes it leniently, whatever the unused bits of its last digit, so one
// signature would have up to four spellings. Every line is checked,
// cosignatures by keys the caller does not know and the repeated lines
// note.Open skips included.
func checkSigEncoding(msg []byte, text string) error {
	for line := range strings.Lines(string(msg[len(text)+1:])) {
		// A line is "— name base64\n"; a name holds no space.
		_, b64, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(line, "\n"), "\u2014 "), " ")
		if _, err := base64.StdEncoding.Strict().DecodeString(b64); err != nil {
			return fmt.Errorf("signature base64 is not canonical: %.80q", line)
		}
	}
	return nil
}
