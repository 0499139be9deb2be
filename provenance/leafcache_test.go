package provenance

import (
	"bytes"
	"testing"
)

func TestLeafCache(t *testing.T) {
	c := newLeafCache(2)
	if _, ok := c.get(0); ok {
		t.Fatal("an empty cache has leaf 0")
	}
	c.put(0, []byte("a"))
	c.put(1, []byte("b"))
	for i, want := range []string{"a", "b"} {
		if leaf, ok := c.get(uint64(i)); !ok || !bytes.Equal(leaf, []byte(want)) {
			t.Errorf("get(%d) = %q, %v; want %q", i, leaf, ok, want)
		}
	}
	// Full: the next put empties it first.
	c.put(2, []byte("c"))
	if _, ok := c.get(0); ok {
		t.Error("a full cache kept its leaves past max")
	}
	if leaf, ok := c.get(2); !ok || string(leaf) != "c" {
		t.Errorf("get(2) = %q, %v; want \"c\"", leaf, ok)
	}
}
