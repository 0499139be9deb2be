package boltlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// tileReader lets x/mod's tlog, a tile client we did not write, read our
// tiles.
type tileReader struct {
	t *testing.T
	l *Log
}

func (r tileReader) Height() int { return merkle.TileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		if tile.L < 0 {
			return nil, fmt.Errorf("data tile %v asked for", tile.Path())
		}
		data, err := r.l.Tile(r.t.Context(), uint8(tile.L), uint64(tile.N), tile.W)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTilesRebuildRoot serves tiles at the sizes where tiles start, fill
// and spill over, and checks that tlog rebuilds the checkpoint's root from
// them and proves every sampled leaf, and that entry bundles hold the
// leaves the level-0 tiles hash.
func TestTilesRebuildRoot(t *testing.T) {
	s, _ := testKey(t)
	l, db := openLog(t, t.TempDir(), s)
	defer db.Close()
	defer l.Close()
	ctx := t.Context()
	var leaves [][]byte
	for _, size := range []int{0, 1, 255, 256, 257, 65536, 65537} {
		for len(leaves) < size {
			batch := make([][]byte, min(4096, size-len(leaves)))
			for i := range batch {
				batch[i] = fmt.Appendf(nil, "entry %d", len(leaves)+i)
			}
			if _, err := l.Append(ctx, batch); err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, batch...)
		}
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
		hr := tlog.TileHashReader(tree, tileReader{t, l})
		if size == 0 {
			continue
		}
		root, err := tlog.TreeHash(tree.N, hr)
		if err != nil {
			t.Fatalf("size %d: tlog could not rebuild the root from our tiles: %v", size, err)
		}
		if merkle.Hash(root) != cp.Root {
			t.Fatalf("size %d: tiles give root %v, checkpoint says %v", size, merkle.Hash(root), cp.Root)
		}
		for _, i := range []int{0, size / 2, size - 1} {
			p, err := tlog.ProveRecord(tree.N, int64(i), hr)
			if err != nil {
				t.Fatalf("size %d: prove %d from tiles: %v", size, i, err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, int64(i), tlog.RecordHash(leaves[i])); err != nil {
				t.Fatalf("size %d: record %d: %v", size, i, err)
			}
		}
		// The last entry bundle, full or partial, holds the leaves.
		last := uint64(size-1) / merkle.TileWidth
		width := size - int(last)*merkle.TileWidth
		bundle, err := l.EntryBundle(ctx, last, width)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < width; i++ {
			n := int(binary.BigEndian.Uint16(bundle))
			if got, want := string(bundle[2:2+n]), string(leaves[int(last)*merkle.TileWidth+i]); got != want {
				t.Fatalf("size %d: entry %d is %q, want %q", size, i, got, want)
			}
			bundle = bundle[2+n:]
		}
		if len(bundle) != 0 {
			t.Fatalf("size %d: %d bytes after the last entry", size, len(bundle))
		}
		// Nothing past the tree is served.
		if _, err := l.EntryBundle(ctx, last, width+1); width < merkle.TileWidth && !errors.Is(err, merkle.ErrOutOfRange) {
			t.Fatalf("size %d: entry bundle past the tree: %v", size, err)
		}
		if _, err := l.Tile(ctx, 0, last+1, 1); !errors.Is(err, merkle.ErrOutOfRange) {
			t.Fatalf("size %d: tile past the tree: %v", size, err)
		}
	}
}
