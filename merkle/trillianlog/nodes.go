package trillianlog

import (
	"sync"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// A nodeCache keeps the hashes that made up the proofs Trillian returned,
// each under the range of leaves it is the RFC 6962 hash of: a complete
// subtree, or the incomplete right edge of a tree that a proof carries
// rehashed into one (its "ephemeral" node). The hash of a range of leaves
// never changes in an append-only tree, so a later proof whose every hash
// is known is assembled here, with no call, in the same shape Trillian
// gives it (both use transparency-dev/merkle's proof.Nodes). A proof of
// leaf i at size n shares all but O(1) of its hashes with the proofs of
// its neighbours and with its proof at size n-1.
//
// The hashes are Trillian's answers, unverified, as the proofs Trillian
// returns are: a verifier checks every proof against a signed checkpoint.
// When the cache holds max hashes it is emptied and starts over.
type nodeCache struct {
	mu  sync.Mutex
	max int
	m   map[span]merkle.Hash
}

// A span is the range of leaves [start, end) a hash covers.
type span struct{ start, end uint64 }

func newNodeCache(max int) *nodeCache {
	if max <= 0 {
		return nil
	}
	return &nodeCache{max: max, m: make(map[span]merkle.Hash)}
}

func nodeSpan(id compact.NodeID) span {
	return span{id.Index << id.Level, (id.Index + 1) << id.Level}
}

// spans returns the range of leaves each hash of the proof nodes describe
// covers, in proof order: one per hash, with the nodes Trillian rehashes
// into one as one span.
func spans(nodes proof.Nodes) []span {
	_, begin, end := nodes.Ephem()
	out := make([]span, 0, len(nodes.IDs))
	for i := 0; i < len(nodes.IDs); i++ {
		if i != begin || end-begin <= 1 {
			out = append(out, nodeSpan(nodes.IDs[i]))
			continue
		}
		// IDs[begin:end] run from the rightmost to the leftmost.
		out = append(out, span{nodeSpan(nodes.IDs[end-1]).start, nodeSpan(nodes.IDs[begin]).end})
		i = end - 1
	}
	return out
}

// proof assembles the proof the nodes describe from the cache, or reports
// that a hash is missing.
func (c *nodeCache) proof(nodes proof.Nodes) ([]merkle.Hash, bool) {
	if c == nil {
		return nil, false
	}
	ss := spans(nodes)
	out := make([]merkle.Hash, len(ss))
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range ss {
		h, ok := c.m[s]
		if !ok {
			return nil, false
		}
		out[i] = h
	}
	return out, true
}

// learn records the hashes of a proof Trillian returned for nodes; p has
// one hash per span (proofHashes checked it).
func (c *nodeCache) learn(nodes proof.Nodes, p []merkle.Hash) {
	if c == nil {
		return
	}
	ss := spans(nodes)
	if len(ss) != len(p) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(p) > c.max {
		clear(c.m)
	}
	for i, s := range ss {
		c.m[s] = p[i]
	}
}

// get returns the hash of the leaves s covers, if known.
func (c *nodeCache) get(s span) (merkle.Hash, bool) {
	if c == nil {
		return merkle.Hash{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[s]
	return h, ok
}

// put records the hash of the leaves s covers.
func (c *nodeCache) put(s span, h merkle.Hash) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[s] = h
}
