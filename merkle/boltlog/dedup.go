package boltlog

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"

	"github.com/provtrail/provtrail/merkle"
)

// A run is a sorted, immutable table of dedup entries for the leaves
// [start, start+count), stored in page-sized chunks so that the pages a
// merge frees can be reused by any later write.
type run struct {
	start, count uint64
	fences       []uint64 // the first hash prefix of each chunk
}

func runChunkKey(start uint64, chunk int) []byte {
	var k [12]byte
	binary.BigEndian.PutUint64(k[:], start)
	binary.BigEndian.PutUint32(k[8:], uint32(chunk))
	return k[:]
}

// putEntry writes the entry for leaf hash h at index into dst.
func putEntry(dst []byte, h merkle.Hash, index uint64) {
	copy(dst[:8], h[:8])
	dst[8] = byte(index >> 32)
	binary.BigEndian.PutUint32(dst[9:], uint32(index))
}

func entryIndex(e []byte) uint64 {
	return uint64(e[8])<<32 | uint64(binary.BigEndian.Uint32(e[9:]))
}

// loadRuns reads the run list and each chunk's fence.
func (b buckets) loadRuns() ([]run, error) {
	var runs []run
	c := b.dedup.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 12 || len(v) < entrySize || len(v)%entrySize != 0 {
			return nil, fmt.Errorf("dedup chunk %x is corrupt", k)
		}
		start, chunk := binary.BigEndian.Uint64(k), int(binary.BigEndian.Uint32(k[8:]))
		if len(runs) == 0 || runs[len(runs)-1].start != start {
			runs = append(runs, run{start: start})
		}
		r := &runs[len(runs)-1]
		if chunk != len(r.fences) {
			return nil, fmt.Errorf("dedup run %d is missing chunk %d", start, len(r.fences))
		}
		r.fences = append(r.fences, binary.BigEndian.Uint64(v))
		r.count += uint64(len(v) / entrySize)
	}
	return runs, nil
}

// readRun returns a copy of all of r's entries.
func (b buckets) readRun(r run) []byte {
	out := make([]byte, 0, r.count*entrySize)
	for i := range r.fences {
		out = append(out, b.dedup.Get(runChunkKey(r.start, i))...)
	}
	return out
}

// writeRun stores sorted entries as the run starting at start.
func (b buckets) writeRun(start uint64, entries []byte) (run, error) {
	r := run{start: start, count: uint64(len(entries) / entrySize)}
	for i := 0; len(entries) > 0; i++ {
		n := min(len(entries), chunkEntries*entrySize)
		r.fences = append(r.fences, binary.BigEndian.Uint64(entries))
		if err := b.dedup.Put(runChunkKey(start, i), entries[:n]); err != nil {
			return run{}, err
		}
		entries = entries[n:]
	}
	return r, nil
}

func (b buckets) deleteRun(r run) error {
	for i := range r.fences {
		if err := b.dedup.Delete(runChunkKey(r.start, i)); err != nil {
			return err
		}
	}
	return nil
}

// lookupRun calls found with the index of every entry of r whose prefix is
// h's (almost always none or one) until found returns true.
func (b buckets) lookupRun(r run, h merkle.Hash, found func(index uint64) bool) bool {
	prefix := binary.BigEndian.Uint64(h[:8])
	// Entries with this prefix start in the last chunk whose fence is below
	// it, or in the first chunk if none is.
	chunk := max(sort.Search(len(r.fences), func(i int) bool { return r.fences[i] >= prefix })-1, 0)
	for ; chunk < len(r.fences); chunk++ {
		v := b.dedup.Get(runChunkKey(r.start, chunk))
		n := len(v) / entrySize
		i := sort.Search(n, func(i int) bool { return binary.BigEndian.Uint64(v[i*entrySize:]) >= prefix })
		for ; i < n; i++ {
			e := v[i*entrySize : (i+1)*entrySize]
			if binary.BigEndian.Uint64(e) != prefix {
				return false
			}
			if found(entryIndex(e)) {
				return true
			}
		}
	}
	return false
}

// mergeEntries merges two sorted entry tables into a new one.
func mergeEntries(a, b []byte) []byte {
	out := make([]byte, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if binary.BigEndian.Uint64(a) <= binary.BigEndian.Uint64(b) {
			out, a = append(out, a[:entrySize]...), a[entrySize:]
		} else {
			out, b = append(out, b[:entrySize]...), b[entrySize:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}

func sortEntries(v []byte) {
	n := len(v) / entrySize
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		x, y := binary.BigEndian.Uint64(v[a*entrySize:]), binary.BigEndian.Uint64(v[b*entrySize:])
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return a - b
	})
	sorted := make([]byte, len(v))
	for i, j := range idx {
		copy(sorted[i*entrySize:], v[j*entrySize:(j+1)*entrySize])
	}
	copy(v, sorted)
}
