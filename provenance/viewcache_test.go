package provenance

import "testing"

func TestViewCacheBoundAndFreshness(t *testing.T) {
	c := newViewCache(2)
	a, b, d := ItemID{GTIN: "a"}, ItemID{GTIN: "b"}, ItemID{GTIN: "d"}
	c.put(&cachedView{id: a, applied: 5, size: 5})
	c.put(&cachedView{id: b, applied: 5, size: 5})
	if _, fresh := c.get(a, 5, 5); !fresh { // a is now the most recently used
		t.Fatal("a is not fresh at (5, 5)")
	}
	if v, fresh := c.get(a, 5, 6); fresh || v == nil {
		t.Fatalf("a at checkpoint 6: fresh %v, entry %v; want a stale entry to rebuild from", fresh, v)
	}
	if _, fresh := c.get(a, 6, 5); fresh {
		t.Fatal("a is fresh after the index moved")
	}
	c.put(&cachedView{id: d, applied: 6, size: 6}) // evicts b, the least recently used
	if v, _ := c.get(b, 5, 5); v != nil {
		t.Error("b is still cached past the bound")
	}
	if v, _ := c.get(a, 5, 5); v == nil {
		t.Error("a was evicted, b should have been")
	}
	c.put(&cachedView{id: d, applied: 5, size: 5}) // older than what is there
	if _, fresh := c.get(d, 6, 6); !fresh {
		t.Error("an older view replaced a newer one")
	}
}
