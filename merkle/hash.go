package merkle

import (
	"encoding/base64"
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// HashSize is the size of a Merkle tree hash in bytes (SHA-256).
const HashSize = 32

// A Hash is a Merkle tree hash: of a leaf, an interior node or a whole tree.
type Hash [HashSize]byte

// String returns the hash in standard base64, as checkpoints and proofs write it.
func (h Hash) String() string { return base64.StdEncoding.EncodeToString(h[:]) }

// MarshalText encodes the hash in standard base64, so JSON carries it as a
// string.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a standard base64 hash.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash decodes a standard base64 hash.
func ParseHash(s string) (Hash, error) {
	var h Hash
	// Decoded into an array when it has a hash's length: every event but a
	// registration names the item's previous one by its hash.
	var src [(HashSize + 2) / 3 * 4]byte
	var buf [HashSize + 1]byte // that base64 length may decode to one byte more
	if len(s) == len(src) {
		copy(src[:], s)
		if n, err := base64.StdEncoding.Strict().Decode(buf[:], src[:]); err == nil && n == HashSize {
			copy(h[:], buf[:HashSize])
			return h, nil
		}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return h, fmt.Errorf("hash %q is not base64: %w", s, err)
	}
	if len(b) != HashSize {
		return h, fmt.Errorf("hash %q has %d bytes, want %d", s, len(b), HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// LeafHash returns the RFC 6962 hash of a leaf: SHA-256(0x00 || leaf).
//
// The hashing is x/mod's tlog (RecordHash, NodeHash), which hashes in
// place; transparency-dev's rfc6962.DefaultHasher computes the same hashes
// but allocates a SHA-256 state and its result for each one, and the log
// hashes several nodes an event.
func LeafHash(leaf []byte) Hash {
	return Hash(tlog.RecordHash(leaf))
}

// NodeHash returns the RFC 6962 hash of an interior node:
// SHA-256(0x01 || left || right).
func NodeHash(left, right Hash) Hash {
	return Hash(tlog.NodeHash(tlog.Hash(left), tlog.Hash(right)))
}

// HashChildren is NodeHash in the form transparency-dev/merkle's compact
// ranges and proof functions take. Inputs that are not hashes (never the
// case in this module) get the library's answer for any byte strings.
func HashChildren(left, right []byte) []byte {
	if len(left) != HashSize || len(right) != HashSize {
		return rfc6962.DefaultHasher.HashChildren(left, right)
	}
	h := tlog.NodeHash(tlog.Hash(left), tlog.Hash(right))
	return h[:]
}

// hasher is rfc6962.DefaultHasher hashing nodes with HashChildren, for
// the proof checks of transparency-dev/merkle.
type hasher struct{ *rfc6962.Hasher }

func (hasher) HashChildren(left, right []byte) []byte { return HashChildren(left, right) }

var logHasher = hasher{rfc6962.DefaultHasher}

// EmptyRoot is the root hash of the empty tree: SHA-256 of no bytes.
func EmptyRoot() Hash {
	return Hash(rfc6962.DefaultHasher.EmptyRoot())
}

func hashesToBytes(hs []Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}
