package merkle

import (
	"context"
	"errors"
	"fmt"
)

// MaxLeafSize is the largest leaf a [Log] accepts, in bytes: 64 KiB less
// one byte, the most a C2SP tlog-tiles entry bundle can carry (its length
// prefix is a uint16).
const MaxLeafSize = 64<<10 - 1

// Errors a [Log] returns. Callers test for them with [errors.Is].
var (
	// ErrInvalidLeaf is returned by Append for an empty leaf or one larger
	// than MaxLeafSize. Nothing of the batch is appended.
	ErrInvalidLeaf = errors.New("invalid leaf")
	// ErrOutOfRange is matched by every *RangeError.
	ErrOutOfRange = errors.New("out of range")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("log is closed")
	// ErrReadOnly is matched by the error Append returns on a log that
	// only mirrors another one: appends go to the log it mirrors.
	ErrReadOnly = errors.New("log is a read-only mirror")
)

// A RangeError reports a request for indices or tree sizes that the log
// cannot answer: beyond its current size, or inverted. It matches
// ErrOutOfRange.
type RangeError struct {
	Op       string // "leaves", "inclusion proof", "consistency proof"
	A, B     uint64 // the arguments as given (index and size, start and end, old and new size)
	TreeSize uint64 // the size of the tree when the request was answered
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("%s for (%d, %d) is out of range for a tree of size %d", e.Op, e.A, e.B, e.TreeSize)
}

// Is reports whether target is ErrOutOfRange.
func (e *RangeError) Is(target error) bool { return target == ErrOutOfRange }

// A Log is an append-only Merkle tree of opaque leaves, hashed as RFC 6962
// prescribes, whose state is published as signed checkpoints.
//
// Implementations are safe for concurrent use. Every method returns ErrClosed
// once the log is closed, and the context's error if ctx ends first.
type Log interface {
	// Append adds leaves to the end of the log, in order, and returns the
	// index of each. It returns only once every leaf is durable: after a
	// crash at any later moment, each returned index still holds its leaf.
	//
	// A leaf identical to one already in the log (or earlier in the same
	// batch) is not added again: its existing index is returned, so a retry
	// after a lost answer is safe.
	//
	// A leaf that is empty or larger than MaxLeafSize fails the whole batch
	// with an error matching ErrInvalidLeaf, and nothing is appended.
	Append(ctx context.Context, leaves [][]byte) ([]uint64, error)

	// Leaves returns copies of the leaves with indices in [start, end).
	// A range that is inverted or reaches past the current size returns a
	// *RangeError.
	Leaves(ctx context.Context, start, end uint64) ([][]byte, error)

	// Checkpoint returns the latest checkpoint, signed by the log key. Its
	// size covers every leaf whose Append has returned. Checkpoints only ever
	// grow: each is consistent with every earlier one.
	Checkpoint(ctx context.Context) (Checkpoint, error)

	// InclusionProof returns the RFC 6962 audit path proving that the leaf at
	// index is included in the tree of the given size. It returns a
	// *RangeError unless index < size <= the current size.
	InclusionProof(ctx context.Context, index, size uint64) ([]Hash, error)

	// ConsistencyProof returns the RFC 6962 proof that the tree of newSize
	// extends the tree of oldSize. It returns a *RangeError unless
	// oldSize <= newSize <= the current size. The proof is empty when
	// oldSize is 0 or equals newSize.
	ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]Hash, error)
}

// A ProvingLog is a Log that proves what it appends as it appends it,
// from what the commit had in hand, sparing the reads InclusionProof makes.
type ProvingLog interface {
	Log
	// AppendProved is Append that also returns, for each leaf it added,
	// the leaf's inclusion proof in the tree right after the commit that
	// added it, and that tree's signed checkpoint. A leaf that was in the
	// log already gets its index only (a nil Proof).
	//
	// hashes, unless nil, are the leaves' LeafHash, which the caller has
	// computed already: the log takes them as they are.
	AppendProved(ctx context.Context, leaves [][]byte, hashes []Hash) ([]Proved, error)
}

// A MultiProver is a Log that proves several leaves against one tree size
// at once. A history page or a bundle proves every entry of an item, and
// their proofs share the nodes of the tree's right border and its upper
// levels: read once, not once a proof.
type MultiProver interface {
	Log
	// InclusionProofs returns InclusionProof(indexes[i], size) for each i,
	// or the first error InclusionProof would return.
	InclusionProofs(ctx context.Context, indexes []uint64, size uint64) ([][]Hash, error)
}

// InclusionProofs returns l.InclusionProof(ctx, indexes[i], size) for each
// i, or the first error: in one call if l is a MultiProver, else one proof
// at a time.
func InclusionProofs(ctx context.Context, l Log, indexes []uint64, size uint64) ([][]Hash, error) {
	if mp, ok := l.(MultiProver); ok {
		return mp.InclusionProofs(ctx, indexes, size)
	}
	out := make([][]Hash, len(indexes))
	for i, index := range indexes {
		p, err := l.InclusionProof(ctx, index, size)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}

// Proved is where AppendProved put one leaf, and the proof of it.
type Proved struct {
	Index uint64
	// Checkpoint and Proof: Proof is the inclusion proof of the leaf at
	// Index in the tree of Checkpoint; both are zero if the leaf was in
	// the log already.
	Checkpoint Checkpoint
	Proof      []Hash
}

// CheckLeaf returns an error matching ErrInvalidLeaf if leaf is empty or
// larger than MaxLeafSize.
func CheckLeaf(leaf []byte) error {
	switch {
	case len(leaf) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidLeaf)
	case len(leaf) > MaxLeafSize:
		return fmt.Errorf("%w: %d bytes, over the maximum of %d", ErrInvalidLeaf, len(leaf), MaxLeafSize)
	}
	return nil
}
