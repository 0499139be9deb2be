package trillianlog

import (
	"fmt"
	"testing"

	"github.com/provtrail/provtrail/merkle"
)

// TestProofCache checks that proofs assembled from cached hashes are the
// very proofs Trillian returns, for every index and pair of sizes up to n,
// asked for in an order that mixes cache hits and misses.
func TestProofCache(t *testing.T) {
	c := testCluster(t)
	ctx := t.Context()
	dir := t.TempDir()
	cached, _ := c.openLog(t, dir)
	defer cached.Close()
	direct, _ := c.openLog(t, dir)
	defer direct.Close()
	direct.nodes = nil // every proof from Trillian

	const n = 40
	for i := 0; i < n; i += 8 {
		batch := make([][]byte, 8)
		for j := range batch {
			batch[j] = fmt.Appendf(nil, "proof cache leaf %d", i+j)
		}
		if _, err := cached.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	same := func(what string, got, want []merkle.Hash) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: assembled from the cache %v, Trillian returned %v", what, got, want)
		}
	}
	for size := uint64(n); size >= 1; size-- {
		for index := range size {
			got, err := cached.InclusionProof(ctx, index, size)
			if err != nil {
				t.Fatal(err)
			}
			want, err := direct.InclusionProof(ctx, index, size)
			if err != nil {
				t.Fatal(err)
			}
			same(fmt.Sprintf("InclusionProof(%d, %d)", index, size), got, want)
		}
	}
	for newSize := uint64(1); newSize <= n; newSize++ {
		for oldSize := uint64(1); oldSize <= newSize; oldSize++ {
			got, err := cached.ConsistencyProof(ctx, oldSize, newSize)
			if err != nil {
				t.Fatal(err)
			}
			want, err := direct.ConsistencyProof(ctx, oldSize, newSize)
			if err != nil {
				t.Fatal(err)
			}
			same(fmt.Sprintf("ConsistencyProof(%d, %d)", oldSize, newSize), got, want)
		}
	}
	cached.nodes.mu.Lock()
	held := len(cached.nodes.m)
	cached.nodes.mu.Unlock()
	if held == 0 {
		t.Fatal("the cache learned nothing")
	}
}
