package boltlog

import (
	"context"
	"fmt"

	"github.com/provtrail/provtrail/merkle"
)

var _ merkle.TileLog = (*Log)(nil)

// Tile implements merkle.TileLog. Tile level L is the tree's level 8L,
// which is stored, so a tile is a copy of stored hashes.
func (l *Log) Tile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	var out []byte
	err := l.view(ctx, func(b buckets) error {
		size := b.size()
		treeLevel := uint(level) * merkle.TileHeight
		if width < 1 || width > merkle.TileWidth || treeLevel >= 64 || index > (1<<56) {
			return &merkle.RangeError{Op: "tile", A: index, B: uint64(width), TreeSize: size}
		}
		first := index * merkle.TileWidth
		if first+uint64(width) > size>>treeLevel {
			return &merkle.RangeError{Op: "tile", A: index, B: uint64(width), TreeSize: size}
		}
		out = make([]byte, 0, width*merkle.HashSize)
		var r hashReader
		for i := first; i < first+uint64(width); i++ {
			h, err := r.hash(b, treeLevel, i)
			if err != nil {
				return err
			}
			out = append(out, h[:]...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tile %d/%d.p/%d: %w", level, index, width, err)
	}
	return out, nil
}

// EntryBundle implements merkle.TileLog.
func (l *Log) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	var out []byte
	err := l.view(ctx, func(b buckets) error {
		size := b.size()
		if width < 1 || width > merkle.TileWidth || index > (1<<56) {
			return &merkle.RangeError{Op: "entry bundle", A: index, B: uint64(width), TreeSize: size}
		}
		first := index * merkle.TileWidth
		if first+uint64(width) > size {
			return &merkle.RangeError{Op: "entry bundle", A: index, B: uint64(width), TreeSize: size}
		}
		leaves, err := b.leafRange(first, first+uint64(width))
		if err != nil {
			return err
		}
		out = merkle.AppendEntryBundle(out, leaves)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("entry bundle %d.p/%d: %w", index, width, err)
	}
	return out, nil
}
