package merkle

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of a C2SP tlog-tiles tile: a full tile holds
// 2^8 = 256 hashes, and tile level L holds the tree's level 8L hashes.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile, and of entries in a
// full entry bundle.
const TileWidth = 1 << TileHeight

// A TileLog is a Log that also serves the C2SP tlog-tiles read API
// (https://c2sp.org/tlog-tiles), so that monitors and witnesses written by
// others can follow it.
type TileLog interface {
	Log
	// Tile returns the tile at level and index, width hashes wide (1 to
	// TileWidth; less only for a partial tile at the right edge): the
	// concatenated hashes of the tree's level TileHeight*level, positions
	// index*TileWidth to index*TileWidth+width. It returns a *RangeError if
	// the tree does not hold them all yet.
	Tile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error)
	// EntryBundle returns the leaves index*TileWidth to
	// index*TileWidth+width as a C2SP entry bundle: each leaf as a
	// big-endian uint16 length followed by its bytes. It returns a
	// *RangeError if the tree does not hold them all yet.
	EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error)
}

// A TilePath names one C2SP tlog-tiles resource: a hash tile (Level >= 0)
// or an entry bundle (Level == -1), Width entries wide.
type TilePath struct {
	Level int
	Index uint64
	Width int
}

// ParseTilePath parses the path of a tile, "tile/<L>/<N>[.p/<W>]", or of an
// entry bundle, "tile/entries/<N>[.p/<W>]", with N in the C2SP form
// (groups of three digits, all but the last prefixed with x). It accepts
// only the one valid spelling of each path.
func ParseTilePath(path string) (TilePath, error) {
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return TilePath{}, fmt.Errorf("tile path %q does not start with tile/", path)
	}
	// C2SP paths are x/mod's tile paths without the height: reuse its
	// parser, which also insists on the canonical spelling.
	if e, ok := strings.CutPrefix(rest, "entries/"); ok {
		rest = "data/" + e
	}
	t, err := tlog.ParseTilePath(fmt.Sprintf("tile/%d/%s", TileHeight, rest))
	if err != nil {
		return TilePath{}, fmt.Errorf("tile path %q: %w", path, err)
	}
	return TilePath{Level: t.L, Index: uint64(t.N), Width: t.W}, nil
}

// AppendEntryBundle appends leaves to b as a C2SP entry bundle: each leaf
// as a big-endian uint16 length followed by its bytes.
func AppendEntryBundle(b []byte, leaves [][]byte) []byte {
	for _, leaf := range leaves {
		b = binary.BigEndian.AppendUint16(b, uint16(len(leaf)))
		b = append(b, leaf...)
	}
	return b
}
