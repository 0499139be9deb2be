package boltlog

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/provtrail/provtrail/merkle"
)

// A run is a sorted, immutable table of dedup entries for the leaves
// [start, start+count), stored in page-sized chunks so that the pages a
// merge frees can be reused by any later write. Nothing but its bounds is
// kept in memory: lookups read its chunks.
type run struct {
	start, count uint64
}

func (r run) chunks() int {
	return int((r.count + chunkEntries - 1) / chunkEntries)
}

// runsOf returns the dedup runs of a log of size leaves. putRuns adds a
// run of runLeaves leaves for each whole span and merges the last two runs
// while they are equal, as a binary counter carries, so there is one run
// for each bit set in size/runLeaves, the largest first.
func runsOf(size uint64) []run {
	var runs []run
	var start uint64
	units := size / runLeaves
	for bit := 63; bit >= 0; bit-- {
		if units&(1<<bit) != 0 {
			n := uint64(1) << bit * runLeaves
			runs = append(runs, run{start: start, count: n})
			start += n
		}
	}
	return runs
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

// checkRuns checks that the chunks of runs are stored and end where
// they should, reading only the last chunk of each: the runs follow from
// the log's size.
func (b buckets) checkRuns(runs []run) error {
	for _, r := range runs {
		last := r.chunks() - 1
		want := int(r.count-uint64(last)*chunkEntries) * entrySize
		if v := b.dedup.Get(runChunkKey(r.start, last)); len(v) != want {
			return fmt.Errorf("dedup run %d chunk %d holds %d bytes, want %d", r.start, last, len(v), want)
		}
		if b.dedup.Get(runChunkKey(r.start, last+1)) != nil {
			return fmt.Errorf("dedup run %d has chunks past %d", r.start, last)
		}
	}
	return nil
}

// views returns r's chunks as bbolt holds them, valid until the
// transaction ends.
func (b buckets) views(r run) ([][]byte, error) {
	out := make([][]byte, r.chunks())
	for i := range out {
		if out[i] = b.dedup.Get(runChunkKey(r.start, i)); len(out[i]) == 0 || len(out[i])%entrySize != 0 {
			return nil, fmt.Errorf("dedup run %d chunk %d is missing or corrupt", r.start, i)
		}
	}
	return out, nil
}

// writeRun stores sorted entries as the run starting at start.
func (b buckets) writeRun(start uint64, entries []byte) (run, error) {
	r := run{start: start, count: uint64(len(entries) / entrySize)}
	for i := 0; len(entries) > 0; i++ {
		n := min(len(entries), chunkEntries*entrySize)
		if err := b.dedup.Put(runChunkKey(start, i), entries[:n]); err != nil {
			return run{}, err
		}
		entries = entries[n:]
	}
	return r, nil
}

func (b buckets) deleteRun(r run) error {
	for i := range r.chunks() {
		if err := b.dedup.Delete(runChunkKey(r.start, i)); err != nil {
			return err
		}
	}
	return nil
}

// lookupRun calls found with the index of every entry of r whose prefix is
// h's (almost always none or one) until found returns true.
func (b buckets) lookupRun(r run, h merkle.Hash, found func(index uint64) bool) (bool, error) {
	prefix := binary.BigEndian.Uint64(h[:8])
	chunk, v, err := b.findChunk(r, prefix)
	if err != nil {
		return false, err
	}
	for ; chunk < r.chunks(); chunk++ {
		if v == nil {
			v = b.dedup.Get(runChunkKey(r.start, chunk))
		}
		n := len(v) / entrySize
		i := sort.Search(n, func(i int) bool { return binary.BigEndian.Uint64(v[i*entrySize:]) >= prefix })
		for ; i < n; i++ {
			e := v[i*entrySize : (i+1)*entrySize]
			if binary.BigEndian.Uint64(e) != prefix {
				return false, nil
			}
			if found(entryIndex(e)) {
				return true, nil
			}
		}
		v = nil
	}
	return false, nil
}

// findChunk returns the first chunk of r whose last entry's prefix is at
// least prefix (r.chunks() if none is): where entries with that prefix
// start, if r has any. It returns the chunk's entries too if it read them. Leaf-hash prefixes are uniform, so it guesses the
// chunk from where prefix lies between the bounds it knows, which lands
// on or next to the right one; every other step halves the interval
// instead, so that prefixes bunched on purpose cost no more than a binary
// search.
func (b buckets) findChunk(r run, prefix uint64) (int, []byte, error) {
	lo, hi := 0, r.chunks() // the answer is in [lo, hi]
	below, above := uint64(0), uint64(math.MaxUint64)
	for step := 0; lo < hi; step++ {
		g := lo + (hi-lo)/2
		if step%2 == 0 && above > below {
			f := float64(prefix-min(prefix, below)) / float64(above-below)
			g = lo + min(int(f*float64(hi-lo)), hi-lo-1)
		}
		v := b.dedup.Get(runChunkKey(r.start, g))
		if len(v) < entrySize || len(v)%entrySize != 0 {
			return 0, nil, fmt.Errorf("dedup run %d chunk %d is missing or corrupt", r.start, g)
		}
		first, last := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[len(v)-entrySize:])
		switch {
		case last < prefix:
			lo, below = g+1, last
		case first < prefix:
			return g, v, nil
		default:
			hi, above = g, first
		}
	}
	return lo, nil, nil
}

// mergeRuns writes the entries of the adjacent runs x and y, in order, as
// one run at x.start over x's chunks, and deletes y's. It reads both
// through views taken before it writes: a value bbolt returned stays valid
// for the transaction, whatever is put over its key later.
func (b buckets) mergeRuns(x, y run) (run, error) {
	xs, err := b.views(x)
	if err != nil {
		return run{}, err
	}
	ys, err := b.views(y)
	if err != nil {
		return run{}, err
	}
	if err := b.deleteRun(y); err != nil {
		return run{}, err
	}
	var xv, yv []byte
	chunk, buf := 0, make([]byte, 0, chunkEntries*entrySize)
	for {
		if len(xv) == 0 && len(xs) > 0 {
			xv, xs = xs[0], xs[1:]
		}
		if len(yv) == 0 && len(ys) > 0 {
			yv, ys = ys[0], ys[1:]
		}
		if len(xv) == 0 && len(yv) == 0 {
			break
		}
		// Equal prefixes keep x's entry first: its leaves are older.
		if len(yv) == 0 || len(xv) > 0 && binary.BigEndian.Uint64(xv) <= binary.BigEndian.Uint64(yv) {
			buf, xv = append(buf, xv[:entrySize]...), xv[entrySize:]
		} else {
			buf, yv = append(buf, yv[:entrySize]...), yv[entrySize:]
		}
		if len(buf) == cap(buf) {
			if err := b.dedup.Put(runChunkKey(x.start, chunk), buf); err != nil {
				return run{}, err
			}
			chunk, buf = chunk+1, make([]byte, 0, chunkEntries*entrySize)
		}
	}
	if len(buf) > 0 {
		if err := b.dedup.Put(runChunkKey(x.start, chunk), buf); err != nil {
			return run{}, err
		}
	}
	return run{start: x.start, count: x.count + y.count}, nil
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
