package merkle

import (
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
)

// ErrBadProof is matched by every error of VerifyInclusion,
// VerifyConsistency and ParseProof.
var ErrBadProof = errors.New("proof does not verify")

// VerifyInclusion checks that proof shows the leaf with hash leafHash at
// index in the tree of the given size and root.
func VerifyInclusion(leafHash Hash, index, size uint64, root Hash, p []Hash) error {
	if index >= size {
		return fmt.Errorf("%w: index %d is not below tree size %d", ErrBadProof, index, size)
	}
	if err := proof.VerifyInclusion(logHasher, index, size, leafHash[:], hashesToBytes(p), root[:]); err != nil {
		return fmt.Errorf("%w: inclusion of leaf %d in tree of size %d: %v", ErrBadProof, index, size, err)
	}
	return nil
}

// VerifyConsistency checks that proof shows the tree (newSize, newRoot)
// extends the tree (oldSize, oldRoot).
func VerifyConsistency(oldSize, newSize uint64, oldRoot, newRoot Hash, p []Hash) error {
	if oldSize == 0 {
		// Every tree extends the empty one; there is nothing to prove, but
		// the empty tree has exactly one root.
		if oldRoot != EmptyRoot() {
			return fmt.Errorf("%w: root of the empty tree is wrong", ErrBadProof)
		}
		if len(p) != 0 {
			return fmt.Errorf("%w: non-empty proof from the empty tree", ErrBadProof)
		}
		if newSize == 0 && newRoot != oldRoot {
			return fmt.Errorf("%w: root of the empty tree is wrong", ErrBadProof)
		}
		return nil
	}
	if err := proof.VerifyConsistency(logHasher, oldSize, newSize, hashesToBytes(p), oldRoot[:], newRoot[:]); err != nil {
		return fmt.Errorf("%w: consistency of tree size %d with %d: %v", ErrBadProof, oldSize, newSize, err)
	}
	return nil
}
