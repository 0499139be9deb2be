package boltlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/compact"
	"go.etcd.io/bbolt"
)

// Bucket layout, all under the top-level bucket logBucket.
const (
	logBucket      = "merkle-log"
	metaBucket     = "meta"   // sizeKey -> uint64 tree size, runsKey -> run list
	leafBucket     = "leaves" // uint64 first index -> (uvarint length, leaf)*, one page
	hashBucket     = "hashes" // (level byte, uint64 chunk) -> up to chunkHashes hashes
	dedupBucket    = "dedup"  // (uint64 run start, uint32 chunk) -> sorted dedup entries
	sizeKey        = "size"
	runsKey        = "runs" // the dedup runs, see encodeRuns
	formatKey      = "format"
	formatV1       = "boltlog/v1" // no run list: the runs follow from the size
	formatV2       = "boltlog/v2"
	chunkHashes    = 126  // 126*32 + key and headers fill one 4 KiB page
	leafChunkBytes = 4056 // 4096 less page header, element header and key
	runLeaves      = 4096
	entrySize      = 13  // 8-byte hash prefix, 5-byte index
	chunkEntries   = 311 // 311*13 + key and headers fill one 4 KiB page
	maxLogIndex    = 1 << 40
	chunkKeySize   = 9
)

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func chunkKey(level uint, chunk uint64) []byte {
	var k [chunkKeySize]byte
	k[0] = byte(level)
	binary.BigEndian.PutUint64(k[1:], chunk)
	return k[:]
}

// buckets are the log's nested buckets within one transaction.
type buckets struct {
	meta, leaves, hashes, dedup *bbolt.Bucket
}

func openBuckets(tx *bbolt.Tx) (buckets, error) {
	root := tx.Bucket([]byte(logBucket))
	if root == nil {
		return buckets{}, errors.New("log bucket missing")
	}
	b := buckets{
		meta:   root.Bucket([]byte(metaBucket)),
		leaves: root.Bucket([]byte(leafBucket)),
		hashes: root.Bucket([]byte(hashBucket)),
		dedup:  root.Bucket([]byte(dedupBucket)),
	}
	if b.meta == nil || b.leaves == nil || b.hashes == nil || b.dedup == nil {
		return buckets{}, errors.New("log buckets missing")
	}
	// Keys are appended in increasing order: pack pages full.
	b.leaves.FillPercent = 1.0
	b.hashes.FillPercent = 0.9
	b.dedup.FillPercent = 1.0
	return b, nil
}

// createBuckets creates the log's buckets on first use. A boltlog/v1 file
// becomes boltlog/v2 by recording the run list its size implies: the run
// chunks stay where they are.
func createBuckets(tx *bbolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists([]byte(logBucket))
	if err != nil {
		return err
	}
	for _, name := range []string{metaBucket, leafBucket, hashBucket, dedupBucket} {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	b, err := openBuckets(tx)
	if err != nil {
		return err
	}
	switch f := b.meta.Get([]byte(formatKey)); {
	case f == nil && b.size() == 0:
	case string(f) == formatV2:
		return nil
	case f == nil, string(f) == formatV1:
		// Files written before the format was recorded are v1.
		if err := b.putRunList(runsOf(b.size())); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown storage format %q", f)
	}
	return b.meta.Put([]byte(formatKey), []byte(formatV2))
}

func (b buckets) size() uint64 {
	v := b.meta.Get([]byte(sizeKey))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// storedHash returns the hash of the perfect subtree (level, index), which
// the caller knows to be complete. Odd levels are computed from the two
// stored children one level below.
func (b buckets) storedHash(level uint, index uint64) (merkle.Hash, error) {
	var r hashReader
	return r.hash(b, level, index)
}

// A hashReader reads stored hashes, remembering the last chunk it read:
// the two children of an odd-level node almost always share one. With a
// memo, it also remembers every node it read or computed, for proofs that
// share nodes.
type hashReader struct {
	key   [chunkKeySize]byte
	chunk []byte
	memo  map[compact.NodeID]merkle.Hash
}

func (r *hashReader) hash(b buckets, level uint, index uint64) (merkle.Hash, error) {
	if r.memo == nil {
		return r.read(b, level, index)
	}
	id := compact.NewNodeID(level, index)
	if h, ok := r.memo[id]; ok {
		return h, nil
	}
	h, err := r.read(b, level, index)
	if err == nil {
		r.memo[id] = h
	}
	return h, err
}

func (r *hashReader) read(b buckets, level uint, index uint64) (merkle.Hash, error) {
	if level%2 == 1 {
		left, err := r.hash(b, level-1, 2*index)
		if err != nil {
			return merkle.Hash{}, err
		}
		right, err := r.hash(b, level-1, 2*index+1)
		if err != nil {
			return merkle.Hash{}, err
		}
		return merkle.NodeHash(left, right), nil
	}
	if key := chunkKey(level, index/chunkHashes); r.chunk == nil || string(key) != string(r.key[:]) {
		r.chunk = b.hashes.Get(key)
		copy(r.key[:], key)
	}
	off := int(index%chunkHashes) * merkle.HashSize
	if off+merkle.HashSize > len(r.chunk) {
		return merkle.Hash{}, fmt.Errorf("hash (%d, %d) missing from storage", level, index)
	}
	return merkle.Hash(r.chunk[off : off+merkle.HashSize]), nil
}

// leafRange returns copies of the leaves [start, end), which the caller
// knows to be stored.
func (b buckets) leafRange(start, end uint64) ([][]byte, error) {
	out := make([][]byte, 0, end-start)
	c := b.leaves.Cursor()
	k, v := c.Seek(u64(start))
	if k == nil || binary.BigEndian.Uint64(k) > start {
		k, v = c.Prev()
	}
	for next := start; next < end; k, v = c.Next() {
		if k == nil {
			return nil, fmt.Errorf("leaf %d missing from storage", next)
		}
		first := binary.BigEndian.Uint64(k)
		for i := first; len(v) > 0 && next < end; i++ {
			n, w := binary.Uvarint(v)
			if w <= 0 || uint64(len(v)-w) < n {
				return nil, fmt.Errorf("leaf batch at %d is corrupt", first)
			}
			if i == next {
				out = append(out, append([]byte(nil), v[w:w+int(n)]...))
				next++
			}
			v = v[w+int(n):]
		}
	}
	return out, nil
}
