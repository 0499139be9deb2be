package trillianlog

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestReplicas runs two Logs on one tree, each with its own connection and
// the same log key, as two provd replicas would: they append at once, see
// each other's leaves, give one index to a leaf both append, and sign the
// same checkpoints.
func TestReplicas(t *testing.T) {
	c := testCluster(t)
	ctx := t.Context()
	dir := t.TempDir()
	a, v := c.openLog(t, dir)
	defer a.Close()
	conn, err := grpc.NewClient(c.RPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b, _ := c.openLogWith(t, dir, trillian.NewTrillianLogClient(conn))
	defer b.Close()

	before, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const perReplica, writers = 60, 8
	shared := []byte("a leaf both replicas append")
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		at       = map[uint64][]byte{}
		sharedAt []uint64
	)
	for r, l := range []*Log{a, b} {
		for w := range writers {
			wg.Go(func() {
				for i := w; i < perReplica; i += writers {
					leaf := fmt.Appendf(nil, "replica %d leaf %d", r, i)
					batch := [][]byte{leaf}
					if i == perReplica/2 {
						batch = append(batch, shared)
					}
					idx, err := l.Append(ctx, batch)
					if err != nil {
						t.Errorf("replica %d: Append: %v", r, err)
						return
					}
					mu.Lock()
					if prev, ok := at[idx[0]]; ok {
						t.Errorf("index %d returned for %q and %q", idx[0], prev, leaf)
					}
					at[idx[0]] = leaf
					if len(idx) == 2 {
						sharedAt = append(sharedAt, idx[1])
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(sharedAt) != 2 || sharedAt[0] != sharedAt[1] {
		t.Fatalf("the leaf both replicas appended got indices %v, want one index twice", sharedAt)
	}
	at[sharedAt[0]] = shared

	cpA, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cpB, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(2*perReplica + 1); cpA.Size != want {
		t.Fatalf("checkpoint size %d after %d distinct leaves", cpA.Size, want)
	}
	if !bytes.Equal(cpA.Note, cpB.Note) {
		t.Fatalf("the replicas sign different checkpoints:\n%s\n%s", cpA.Note, cpB.Note)
	}
	if _, err := merkle.ParseCheckpoint(cpB.Note, testOrigin, v); err != nil {
		t.Fatal(err)
	}
	for r, l := range []*Log{a, b} {
		all, err := l.Leaves(ctx, 0, cpA.Size)
		if err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
		for x, leaf := range at {
			if !bytes.Equal(all[x], leaf) {
				t.Fatalf("replica %d reads %q at index %d, where Append put %q", r, all[x], x, leaf)
			}
		}
		// Each replica proves every leaf, whichever replica appended it.
		for x := range cpA.Size {
			p, err := l.InclusionProof(ctx, x, cpA.Size)
			if err != nil {
				t.Fatalf("replica %d: %v", r, err)
			}
			if err := merkle.VerifyInclusion(merkle.LeafHash(all[x]), x, cpA.Size, cpA.Root, p); err != nil {
				t.Fatalf("replica %d: %v", r, err)
			}
		}
		p, err := l.ConsistencyProof(ctx, before.Size, cpA.Size)
		if err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
		if err := merkle.VerifyConsistency(before.Size, cpA.Size, before.Root, cpA.Root, p); err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}
}
