package provenance

import "sync"

// defaultKeyLeaves bounds the leaves a Service's keyLeaves keeps: the
// enrollments and revocations of that many actors' keys.
const defaultKeyLeaves = 4096

// A leafCache keeps log leaves by position. The Service keeps in one the
// leaves that enrolled and revoked actors' keys: every history page
// carries those of its item's actors, and a few actors take part in most
// items, so on a remote log most pages would otherwise read the same few
// leaves again. Leaves never change; when the cache holds max leaves it
// is emptied and starts over.
type leafCache struct {
	mu  sync.Mutex
	max int
	m   map[uint64][]byte
}

func newLeafCache(max int) *leafCache {
	return &leafCache{max: max, m: make(map[uint64][]byte)}
}

// get returns the leaf at index, if kept.
func (c *leafCache) get(index uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	leaf, ok := c.m[index]
	return leaf, ok
}

// put keeps the leaf at index.
func (c *leafCache) put(index uint64, leaf []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[index] = leaf
}
