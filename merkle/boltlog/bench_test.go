package boltlog

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"go.etcd.io/bbolt"
)

// The benchmarks share one log of fixtureLeaves leaves of leafSize bytes,
// built once per test binary run.
const (
	fixtureLeaves = 1_000_000
	leafSize      = 400
)

var fixture struct {
	once      sync.Once
	dir       string
	log       *Log
	db        *bbolt.DB
	fileBytes int64 // file size right after the build, at fixtureLeaves
	err       error
	next      atomic.Uint64 // distinct leaf numbers for appends
}

// benchLeaf returns leaf number i: leafSize bytes, distinct for each i.
func benchLeaf(i uint64) []byte {
	leaf := make([]byte, leafSize)
	seed := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
	for off := 0; off < leafSize; off += len(seed) {
		copy(leaf[off:], seed[:])
	}
	return leaf
}

func benchLog(b *testing.B) *Log {
	b.Helper()
	fixture.once.Do(func() {
		fixture.dir, fixture.err = os.MkdirTemp("", "boltlog-bench-")
		if fixture.err != nil {
			return
		}
		s, _ := testKey(b)
		db, err := OpenDB(filepath.Join(fixture.dir, "log.db"))
		if err != nil {
			fixture.err = err
			return
		}
		l, err := Open(b.Context(), Config{DB: db, Origin: testOrigin, Signer: s})
		if err != nil {
			fixture.err = err
			return
		}
		const batch = 4096
		for i := uint64(0); i < fixtureLeaves; i += batch {
			leaves := make([][]byte, min(batch, fixtureLeaves-i))
			for j := range leaves {
				leaves[j] = benchLeaf(i + uint64(j))
			}
			if _, err := l.Append(b.Context(), leaves); err != nil {
				fixture.err = err
				return
			}
		}
		info, err := os.Stat(filepath.Join(fixture.dir, "log.db"))
		if err != nil {
			fixture.err = err
			return
		}
		fixture.fileBytes = info.Size()
		fixture.log, fixture.db = l, db
		fixture.next.Store(fixtureLeaves)
	})
	if fixture.err != nil {
		b.Fatal(fixture.err)
	}
	return fixture.log
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fixture.log != nil {
		fixture.log.Close()
		fixture.db.Close()
	}
	if fixture.dir != "" {
		os.RemoveAll(fixture.dir)
	}
	os.Exit(code)
}

// BenchmarkAppend measures durable appends of 400-byte leaves, with dedup,
// on a log of 1M leaves, by 1, 16 and 256 concurrent appenders each
// appending one leaf at a time and waiting for it.
//
// The linger=2ms runs reopen the log with Config.MaxWait 2ms, as provd
// runs it.
func BenchmarkAppend(b *testing.B) {
	benchLog(b)
	for _, linger := range []time.Duration{0, 2 * time.Millisecond} {
		for _, appenders := range []int{1, 16, 256} {
			name := strconv.Itoa(appenders)
			if linger > 0 {
				name += "/linger=" + linger.String()
			}
			b.Run(name, func(b *testing.B) {
				benchAppend(b, reopenBenchLog(b, linger), appenders)
			})
		}
	}
	reopenBenchLog(b, 0)
}

// reopenBenchLog reopens the shared log with MaxWait maxWait, if it has
// another.
func reopenBenchLog(b *testing.B, maxWait time.Duration) *Log {
	l := fixture.log
	if l.maxWait == maxWait {
		return l
	}
	l.Close()
	l, err := Open(b.Context(), Config{DB: fixture.db, Origin: testOrigin, Signer: l.signer, MaxWait: maxWait})
	if err != nil {
		b.Fatal(err)
	}
	fixture.log = l
	return l
}

func benchAppend(b *testing.B, l *Log, appenders int) {
	leaves := make([][]byte, b.N)
	for i := range leaves {
		leaves[i] = benchLeaf(fixture.next.Add(1))
	}
	var next atomic.Int64
	commits := l.commits.Load()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range appenders {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := l.Append(b.Context(), leaves[i:i+1]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	n := l.commits.Load() - commits
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/float64(max(n, 1)), "leaves/commit")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "commits/s")
}

// BenchmarkFsync measures a bare 4 KiB write and fsync in the same
// directory, the physical limit group commit amortizes.
func BenchmarkFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "fsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	start := time.Now()
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "fsyncs/s")
}

func BenchmarkInclusionProof(b *testing.B) {
	l := benchLog(b)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := l.InclusionProof(b.Context(), rng.Uint64N(fixtureLeaves), fixtureLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkItemProofs proves 17 random leaves against the tree, as a
// history page of an item with 10 events and their enrollments does after
// each commit: one InclusionProof at a time, and all in one
// InclusionProofs, which reads the nodes they share once.
func BenchmarkItemProofs(b *testing.B) {
	l := benchLog(b)
	const entries = 17
	b.Run("one-by-one", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			for range entries {
				if _, err := l.InclusionProof(b.Context(), rng.Uint64N(fixtureLeaves), fixtureLeaves); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("together", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		indexes := make([]uint64, entries)
		for b.Loop() {
			for i := range indexes {
				indexes[i] = rng.Uint64N(fixtureLeaves)
			}
			if _, err := l.InclusionProofs(b.Context(), indexes, fixtureLeaves); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkConsistencyProof(b *testing.B) {
	l := benchLog(b)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if _, err := l.ConsistencyProof(b.Context(), 1+rng.Uint64N(fixtureLeaves-1), fixtureLeaves); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStorage reports the bytes on disk per leaf beyond the leaf bytes
// themselves, dedup index included, for the 1M-leaf log as built.
func BenchmarkStorage(b *testing.B) {
	benchLog(b)
	for b.Loop() {
	}
	b.ReportMetric(float64(fixture.fileBytes-fixtureLeaves*leafSize)/fixtureLeaves, "bytes/leaf")
	b.ReportMetric(float64(fixture.fileBytes)/(1<<20), "file-MiB")
}

// BenchmarkLookup measures the dedup lookup of a leaf hash the 1M-leaf log
// does not hold, as every new leaf of an append costs the committer, and
// of one it holds, as a retried append does.
func BenchmarkLookup(b *testing.B) {
	l := benchLog(b)
	for _, held := range []bool{false, true} {
		name := "absent"
		if held {
			name = "held"
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			err := l.db.View(func(tx *bbolt.Tx) error {
				bk, err := openBuckets(tx)
				if err != nil {
					return err
				}
				for b.Loop() {
					var h merkle.Hash
					if held {
						h = merkle.LeafHash(benchLeaf(rng.Uint64N(fixtureLeaves)))
					} else {
						binary.BigEndian.PutUint64(h[:], rng.Uint64())
					}
					if _, ok, err := l.st.lookup(bk, h); err != nil || ok != held {
						b.Fatalf("lookup: %v, %v", ok, err)
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
