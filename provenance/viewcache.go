package provenance

import (
	"container/list"
	"sync"
)

// defaultViewCacheItems bounds the views a Service keeps: about 20 KB each
// for an item of 10 events on a log of 1M entries (leaves and proofs), so
// about 20 MB in all.
const defaultViewCacheItems = 1024

// A viewCache keeps the latest ItemView built for each of the most
// recently asked items, least recently used out first.
//
// A view is a function of two numbers: the log positions the index has
// applied (the item's state, its events, its actors' keys) and the size of
// the checkpoint its proofs are against. An entry is served only while
// both are what they were when it was built, so a cached view is exactly
// the view Item would build now; when either moves, the entry is rebuilt,
// reusing its parsed events and leaves, which never change (leaves are
// immutable), so that only the proofs are made again.
type viewCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cachedView, most recently used first
	byID  map[ItemID]*list.Element
}

type cachedView struct {
	id      ItemID
	applied uint64 // Service.applied when built
	size    uint64 // checkpoint size of the proofs
	view    ItemView
}

func newViewCache(max int) *viewCache {
	return &viewCache{max: max, order: list.New(), byID: map[ItemID]*list.Element{}}
}

// get returns the view of id if it was built at applied and size, and
// otherwise the stale entry, if any, to rebuild from.
func (c *viewCache) get(id ItemID, applied, size uint64) (v *cachedView, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	v = el.Value.(*cachedView)
	return v, v.applied == applied && v.size == size
}

// put stores v unless a view built later is there already.
func (c *viewCache) put(v *cachedView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[v.id]; ok {
		old := el.Value.(*cachedView)
		if old.applied > v.applied || old.size > v.size {
			return
		}
		el.Value = v
		c.order.MoveToFront(el)
		return
	}
	c.byID[v.id] = c.order.PushFront(v)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.byID, last.Value.(*cachedView).id)
	}
}
