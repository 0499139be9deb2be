package merkle_test

import (
	"testing"

	"github.com/provtrail/provtrail/merkle"
)

func TestParseTilePath(t *testing.T) {
	for path, want := range map[string]merkle.TilePath{
		"tile/0/000":           {0, 0, 256},
		"tile/0/x001/234":      {0, 1234, 256},
		"tile/2/x001/x002/003": {2, 1002003, 256},
		"tile/1/000.p/5":       {1, 0, 5},
		"tile/entries/017":     {-1, 17, 256},
		"tile/entries/000.p/1": {-1, 0, 1},
	} {
		got, err := merkle.ParseTilePath(path)
		if err != nil || got != want {
			t.Errorf("%s: got %+v %v, want %+v", path, got, err, want)
		}
	}
	for _, path := range []string{
		"tile/0/1234", "tile/0/01", "tile/0/000.p/256", "tile/0/000.p/0", "tile/0/x000/001",
		"tile/8/0/000", "tile/-1/000", "tile/0/../000", "tile/entries/abc", "checkpoint", "tile/0/000/",
	} {
		if got, err := merkle.ParseTilePath(path); err == nil {
			t.Errorf("%s: accepted as %+v", path, got)
		}
	}
}
