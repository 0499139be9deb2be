package tilelog

import (
	"context"
	"fmt"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// A Snapshot is a remote log frozen at one verified checkpoint, read
// through a Client with nothing kept locally: a read-only merkle.Log for
// replaying another server's log once (prov rebuild of a shared index).
// Its leaves are checked as Client.Entries checks them, and its proofs
// are computed from the origin's tiles, authenticated against the
// checkpoint's root.
type Snapshot struct {
	c  *Client
	cp merkle.Checkpoint
}

var _ merkle.Log = (*Snapshot)(nil)

// Snapshot returns the log of c's origin as of cp, a checkpoint c
// verified (Client.Checkpoint).
func (c *Client) Snapshot(cp merkle.Checkpoint) *Snapshot {
	return &Snapshot{c: c, cp: cp}
}

// Append refuses: a snapshot is read-only. The error matches
// merkle.ErrReadOnly.
func (s *Snapshot) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	return nil, fmt.Errorf("%w: append to the origin, %s", merkle.ErrReadOnly, s.c.URL())
}

// Checkpoint returns the snapshot's checkpoint.
func (s *Snapshot) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	return s.cp, ctx.Err()
}

// Leaves returns the leaves [start, end) of the snapshot's tree.
func (s *Snapshot) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	if start > end || end > s.cp.Size {
		return nil, &merkle.RangeError{Op: "leaves", A: start, B: end, TreeSize: s.cp.Size}
	}
	return s.c.Entries(ctx, s.cp, start, end)
}

// InclusionProof proves the leaf at index in the tree of size, no larger
// than the snapshot's.
func (s *Snapshot) InclusionProof(ctx context.Context, index, size uint64) ([]merkle.Hash, error) {
	if index >= size || size > s.cp.Size {
		return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: s.cp.Size}
	}
	tr, hr := s.hashes(ctx)
	p, err := tlog.ProveRecord(int64(size), int64(index), hr)
	if err != nil {
		return nil, tr.classify(fmt.Errorf("prove leaf %d in size %d from the tiles: %w", index, size, err))
	}
	return toHashes(p), nil
}

// ConsistencyProof proves that the tree of newSize, no larger than the
// snapshot's, extends the tree of oldSize.
func (s *Snapshot) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]merkle.Hash, error) {
	if oldSize > newSize || newSize > s.cp.Size {
		return nil, &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: s.cp.Size}
	}
	if oldSize == 0 || oldSize == newSize {
		return []merkle.Hash{}, nil
	}
	tr, hr := s.hashes(ctx)
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), hr)
	if err != nil {
		return nil, tr.classify(fmt.Errorf("prove size %d in size %d from the tiles: %w", oldSize, newSize, err))
	}
	return toHashes(p), nil
}

// hashes returns a reader of the tree's stored hashes, from tiles
// authenticated against the snapshot's root.
func (s *Snapshot) hashes(ctx context.Context) (*tileReader, tlog.HashReader) {
	tr := s.c.tiles(ctx)
	return tr, tlog.TileHashReader(tlog.Tree{N: int64(s.cp.Size), Hash: tlog.Hash(s.cp.Root)}, tr)
}

func toHashes(p []tlog.Hash) []merkle.Hash {
	out := make([]merkle.Hash, len(p))
	for i, h := range p {
		out[i] = merkle.Hash(h)
	}
	return out
}
