package trillianlog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
)

// The benchmarks run the same workload against the Trillian log and, side
// by side in the same process on the same machine, against the bbolt log:
// 64 and 256 concurrent appenders of leafSize-byte leaves, one leaf per
// Append; and inclusion proofs at random in a tree of proofTreeSize leaves.
const (
	leafSize      = 400
	proofTreeSize = 4096
)

var appenderCounts = []int{64, 256}

// benchLeaf returns leaf number i of a run tagged seed: leafSize bytes,
// distinct for each (seed, i).
func benchLeaf(seed, i uint64) []byte {
	leaf := make([]byte, leafSize)
	h := sha256.Sum256(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, seed), i))
	for off := 0; off < leafSize; off += len(h) {
		copy(leaf[off:], h[:])
	}
	return leaf
}

// appendConcurrently appends n new leaves to l from appenders goroutines,
// one leaf per Append, and returns the appends per second and the median
// time an Append took.
func appendConcurrently(b *testing.B, l merkle.Log, appenders int, seed uint64, n int) (float64, time.Duration) {
	b.Helper()
	var next atomic.Int64
	took := make([]time.Duration, n)
	start := time.Now()
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				t0 := time.Now()
				if _, err := l.Append(b.Context(), [][]byte{benchLeaf(seed, uint64(i))}); err != nil {
					b.Error(err)
					return
				}
				took[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	slices.Sort(took)
	return rate, took[n/2]
}

// proofLatency asks for b.N inclusion proofs at random in a tree of size
// and reports the median and the 99th percentile.
func proofLatency(b *testing.B, l merkle.Log, size uint64) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var took []time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := l.InclusionProof(b.Context(), rng.Uint64N(size), size); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds()), "median-µs")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds()), "p99-µs")
}

// fillTo appends leaves to l until it holds size of them.
func fillTo(b *testing.B, l merkle.Log, size uint64) {
	b.Helper()
	cp, err := l.Checkpoint(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	if cp.Size < size {
		appendConcurrently(b, l, 64, 1<<32|cp.Size, int(size-cp.Size))
	}
	if b.Failed() {
		b.FailNow()
	}
}

var seeds atomic.Uint64

// BenchmarkAppendTrillian measures appends/s by 64 and 256 concurrent
// appenders of 400-byte leaves, each Append returning once Trillian
// integrated its leaf.
func BenchmarkAppendTrillian(b *testing.B) {
	c := testCluster(b)
	l, _ := c.openLog(b, b.TempDir())
	defer l.Close()
	reportAppends(b, l)
}

// BenchmarkAppendBolt is BenchmarkAppendTrillian on the bbolt log.
func BenchmarkAppendBolt(b *testing.B) {
	reportAppends(b, boltLog(b))
}

func reportAppends(b *testing.B, l merkle.Log) {
	for _, appenders := range appenderCounts {
		b.Run(fmt.Sprint(appenders), func(b *testing.B) {
			seed := uint64(time.Now().UnixNano()) + seeds.Add(1)
			rate, median := appendConcurrently(b, l, appenders, seed, max(b.N, appenders))
			b.ReportMetric(rate, "appends/s")
			b.ReportMetric(float64(median.Microseconds())/1000, "median-ms")
		})
	}
}

// BenchmarkInclusionProofTrillian measures one inclusion proof, at random,
// in a tree of 4096 leaves: "rpc" is one GetInclusionProof call (the cache
// of subtree hashes off); "cached" is the Log as configured by default,
// after the first proofs filled its cache.
func BenchmarkInclusionProofTrillian(b *testing.B) {
	c := testCluster(b)
	dir := b.TempDir()
	l, _ := c.openLog(b, dir)
	defer l.Close()
	fillTo(b, l, proofTreeSize)
	b.Run("rpc", func(b *testing.B) {
		l.nodes = nil
		proofLatency(b, l, proofTreeSize)
	})
	b.Run("cached", func(b *testing.B) {
		l.nodes = newNodeCache(1 << 16)
		proofLatency(b, l, proofTreeSize)
	})
}

// BenchmarkAddSequencedTrillian measures what the Log does not use: one
// writer assigning the indices itself with AddSequencedLeaves, on a
// PREORDERED_LOG tree, in batches of 1000 400-byte leaves, until Trillian
// integrated them all. It is the figure QueueLeaf is traded against.
func BenchmarkAddSequencedTrillian(b *testing.B) {
	c := testCluster(b)
	ctx := b.Context()
	id := c.NewTreeOfType(b, trillian.TreeType_PREORDERED_LOG)
	n := max(b.N, 1000)
	const batch = 1000
	seed := uint64(time.Now().UnixNano()) + seeds.Add(1)
	b.ResetTimer()
	start := time.Now()
	for first := 0; first < n; first += batch {
		var leaves []*trillian.LogLeaf
		for i := first; i < min(first+batch, n); i++ {
			leaves = append(leaves, &trillian.LogLeaf{LeafValue: benchLeaf(seed, uint64(i)), LeafIndex: int64(i)})
		}
		resp, err := c.Client.AddSequencedLeaves(ctx, &trillian.AddSequencedLeavesRequest{LogId: id, Leaves: leaves})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range resp.GetResults() {
			if r.GetStatus().GetCode() != 0 {
				b.Fatalf("AddSequencedLeaves: %v", r.GetStatus())
			}
		}
	}
	for {
		resp, err := c.Client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: id})
		if err != nil {
			b.Fatal(err)
		}
		r, err := parseRoot(resp.GetSignedLogRoot())
		if err != nil {
			b.Fatal(err)
		}
		if r.size >= uint64(n) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "leaves/s")
}

// BenchmarkInclusionProofBolt is BenchmarkInclusionProofTrillian on the
// bbolt log.
func BenchmarkInclusionProofBolt(b *testing.B) {
	l := boltLog(b)
	fillTo(b, l, proofTreeSize)
	proofLatency(b, l, proofTreeSize)
}

func boltLog(b *testing.B) *boltlog.Log {
	b.Helper()
	dir := b.TempDir()
	s, _, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), testOrigin)
	if err != nil {
		b.Fatal(err)
	}
	db, err := boltlog.OpenDB(filepath.Join(dir, "log.db"))
	if err != nil {
		b.Fatal(err)
	}
	l, err := boltlog.Open(context.Background(), boltlog.Config{DB: db, Origin: testOrigin, Signer: s})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		l.Close()
		db.Close()
	})
	return l
}
