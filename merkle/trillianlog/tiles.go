package trillianlog

import (
	"context"
	"fmt"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/sync/errgroup"
)

var _ merkle.TileLog = (*Log)(nil)

// tileCalls bounds the Trillian calls one Tile makes at once.
const tileCalls = 8

// EntryBundle implements merkle.TileLog with GetLeavesByRange.
func (l *Log) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	first, err := l.tileRange(ctx, "entry bundle", 0, index, width)
	if err != nil {
		return nil, err
	}
	leaves, err := l.Leaves(ctx, first, first+uint64(width))
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d.p/%d: %w", index, width, err)
	}
	return merkle.AppendEntryBundle(nil, leaves), nil
}

// Tile implements merkle.TileLog. A level-0 tile is the leaf hashes
// GetLeavesByRange returns. Trillian serves no other hash of the tree but
// inside proofs, so each hash of a higher tile, the root of a complete
// subtree of 256^L leaves, is computed from the subtree's first leaf hash
// and that leaf's inclusion proof in the tree that ends with the subtree,
// whose first 8L hashes lie inside the subtree, to the leaf's right.
// Such hashes never change; they are kept with the proofs' hashes (see
// nodeCache), so a tile is mostly computed once.
func (l *Log) Tile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	first, err := l.tileRange(ctx, "tile", level, index, width)
	if err != nil {
		return nil, err
	}
	hashes := make([]merkle.Hash, width)
	if level == 0 {
		for next := first; next < first+uint64(width); {
			leaves, err := l.leafRange(ctx, next, first+uint64(width))
			if err != nil {
				return nil, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, width, err)
			}
			for _, lf := range leaves {
				copy(hashes[next-first][:], lf.GetMerkleLeafHash())
				next++
			}
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(tileCalls)
		height := uint(level) * merkle.TileHeight
		for i := range hashes {
			g.Go(func() (err error) {
				hashes[i], err = l.subtreeHash(gctx, (first+uint64(i))<<height, height)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, width, err)
		}
	}
	out := make([]byte, 0, width*merkle.HashSize)
	for _, h := range hashes {
		out = append(out, h[:]...)
	}
	return out, nil
}

// tileRange checks that the tree holds every hash of the tile at level
// (entry bundles: level 0) from index, width wide, and returns the
// position of its first hash in the tree's level 8*level.
func (l *Log) tileRange(ctx context.Context, op string, level uint8, index uint64, width int) (uint64, error) {
	height := uint(level) * merkle.TileHeight
	if width < 1 || width > merkle.TileWidth || height >= 64 || index > 1<<56 {
		size, err := l.size(ctx, 0)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", op, err)
		}
		return 0, &merkle.RangeError{Op: op, A: index, B: uint64(width), TreeSize: size}
	}
	first := index * merkle.TileWidth
	end := first + uint64(width)
	need := uint64(0)
	if end <= (1<<64-1)>>height {
		need = end << height
	}
	size, err := l.size(ctx, need)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	if need == 0 || end > size>>height {
		return 0, &merkle.RangeError{Op: op, A: index, B: uint64(width), TreeSize: size}
	}
	return first, nil
}

// subtreeHash returns the hash of the complete subtree of 2^height leaves
// from leaf start (a multiple of 2^height).
func (l *Log) subtreeHash(ctx context.Context, start uint64, height uint) (merkle.Hash, error) {
	s := span{start, start + 1<<height}
	if h, ok := l.nodes.get(s); ok {
		return h, nil
	}
	leaves, err := l.leafRange(ctx, start, start+1)
	if err != nil {
		return merkle.Hash{}, err
	}
	path, err := l.InclusionProof(ctx, start, s.end)
	if err != nil {
		return merkle.Hash{}, err
	}
	if len(path) < int(height) {
		return merkle.Hash{}, fmt.Errorf("trillian's inclusion proof of leaf %d at size %d has %d hashes, want at least %d", start, s.end, len(path), height)
	}
	h := merkle.Hash(leaves[0].GetMerkleLeafHash())
	for _, sibling := range path[:height] {
		h = merkle.NodeHash(h, sibling)
	}
	l.nodes.put(s, h)
	return h, nil
}
