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
//
// A run's chunks are keyed by its start, with the top bit set if alt: a
// merge writes the merged run under the key space its first run does not
// use, so both stay whole until the merge ends.
type run struct {
	start, count uint64
	alt          bool
}

// altKey is the top bit of a chunk key's start, never set in an index.
const altKey = 1 << 63

func (r run) chunks() int {
	return int((r.count + chunkEntries - 1) / chunkEntries)
}

func (r run) chunkKey(chunk int) []byte {
	start := r.start
	if r.alt {
		start |= altKey
	}
	return runChunkKey(start, chunk)
}

// runsOf returns the dedup runs of a boltlog/v1 log of size leaves, which
// added a run of runLeaves leaves for each whole span and merged the last
// two runs while they were equal, as a binary counter carries: one run for
// each bit set in size/runLeaves, the largest first.
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

// encodeRuns encodes a run list for runsKey: for each run, its chunk key
// start and its count.
func encodeRuns(runs []run) []byte {
	out := make([]byte, 0, 16*len(runs))
	for _, r := range runs {
		out = append(out, r.chunkKey(0)[:8]...)
		out = binary.BigEndian.AppendUint64(out, r.count)
	}
	return out
}

func decodeRuns(v []byte) ([]run, error) {
	if len(v)%16 != 0 {
		return nil, fmt.Errorf("dedup run list of %d bytes is corrupt", len(v))
	}
	runs := make([]run, 0, len(v)/16)
	for ; len(v) > 0; v = v[16:] {
		key, count := binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
		runs = append(runs, run{start: key &^ altKey, count: count, alt: key&altKey != 0})
	}
	return runs, nil
}

func (b buckets) runs() ([]run, error) {
	return decodeRuns(b.meta.Get([]byte(runsKey)))
}

func (b buckets) putRunList(runs []run) error {
	return b.meta.Put([]byte(runsKey), encodeRuns(runs))
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

// checkRuns checks that runs cover the leaves [0, end) one after another
// and that their chunks are stored and end where they should, reading only
// the last chunk of each.
func (b buckets) checkRuns(runs []run, end uint64) error {
	var next uint64
	for _, r := range runs {
		if r.start != next || r.count == 0 {
			return fmt.Errorf("dedup run list: a run of %d at %d, want one at %d", r.count, r.start, next)
		}
		next += r.count
		last := r.chunks() - 1
		want := int(r.count-uint64(last)*chunkEntries) * entrySize
		if v := b.dedup.Get(r.chunkKey(last)); len(v) != want {
			return fmt.Errorf("dedup run %d chunk %d holds %d bytes, want %d", r.start, last, len(v), want)
		}
		if b.dedup.Get(r.chunkKey(last+1)) != nil {
			return fmt.Errorf("dedup run %d has chunks past %d", r.start, last)
		}
	}
	if next != end {
		return fmt.Errorf("dedup runs end at %d, want %d", next, end)
	}
	return nil
}

// writeRun stores sorted entries as the run starting at start.
func (b buckets) writeRun(start uint64, entries []byte) (run, error) {
	r := run{start: start, count: uint64(len(entries) / entrySize)}
	for i := 0; len(entries) > 0; i++ {
		n := min(len(entries), chunkEntries*entrySize)
		if err := b.dedup.Put(r.chunkKey(i), entries[:n]); err != nil {
			return run{}, err
		}
		entries = entries[n:]
	}
	return r, nil
}

func (b buckets) deleteRun(r run) error {
	for i := range r.chunks() {
		if err := b.dedup.Delete(r.chunkKey(i)); err != nil {
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
			v = b.dedup.Get(r.chunkKey(chunk))
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
// start, if r has any. It returns the chunk's entries too if it read them.
//
// Leaf-hash prefixes are uniform, so it guesses the chunk from where prefix
// lies between the bounds it knows: the first guess lands near the chunk,
// and the next, between that chunk's entries and a bound, on or next to
// it. Past the first few steps every other step halves the interval
// instead, so that prefixes bunched on purpose cost no more than a binary
// search.
func (b buckets) findChunk(r run, prefix uint64) (int, []byte, error) {
	const interpolate = 4   // steps that all guess, before bisecting starts
	lo, hi := 0, r.chunks() // the answer is in [lo, hi]
	below, above := uint64(0), uint64(math.MaxUint64)
	for step := 0; lo < hi; step++ {
		g := lo + (hi-lo)/2
		if (step < interpolate || step%2 == 0) && above > below {
			f := float64(prefix-min(prefix, below)) / float64(above-below)
			g = lo + min(int(f*float64(hi-lo)), hi-lo-1)
		}
		v := b.dedup.Get(r.chunkKey(g))
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

// A merge writes the entries of two adjacent runs x and y, in order, as
// the run out, under the key space x does not use, in as many steps as
// the caller likes; x and y stay whole until the caller deletes them.
// The merged run is the same however the steps fall, so a merge cut short
// by a crash is simply done again.
type merge struct {
	x, y, out run
	xi, yi    uint64 // entries of x and y taken
	chunk     int    // chunks of out written
}

func newMerge(x, y run) *merge {
	return &merge{x: x, y: y, out: run{start: x.start, count: x.count + y.count, alt: !x.alt}}
}

func (m *merge) done() bool { return m.xi == m.x.count && m.yi == m.y.count }

// step writes up to maxChunks chunks of the merged run.
func (b buckets) step(m *merge, maxChunks int) error {
	// The rest of the chunks of x and y that hold entry xi and yi.
	rest := func(r run, i uint64) ([]byte, error) {
		if i == r.count {
			return nil, nil
		}
		v := b.dedup.Get(r.chunkKey(int(i / chunkEntries)))
		off := int(i%chunkEntries) * entrySize
		if len(v) <= off || len(v)%entrySize != 0 {
			return nil, fmt.Errorf("dedup run %d chunk %d is missing or corrupt", r.start, i/chunkEntries)
		}
		return v[off:], nil
	}
	var xv, yv []byte
	var err error
	for n := 0; n < maxChunks && !m.done(); n++ {
		buf := make([]byte, 0, chunkEntries*entrySize)
		for len(buf) < cap(buf) && !m.done() {
			if len(xv) == 0 {
				if xv, err = rest(m.x, m.xi); err != nil {
					return err
				}
			}
			if len(yv) == 0 {
				if yv, err = rest(m.y, m.yi); err != nil {
					return err
				}
			}
			// Equal prefixes keep x's entry first: its leaves are older.
			if len(yv) == 0 || len(xv) > 0 && binary.BigEndian.Uint64(xv) <= binary.BigEndian.Uint64(yv) {
				buf, xv, m.xi = append(buf, xv[:entrySize]...), xv[entrySize:], m.xi+1
			} else {
				buf, yv, m.yi = append(buf, yv[:entrySize]...), yv[entrySize:], m.yi+1
			}
		}
		if err := b.dedup.Put(m.out.chunkKey(m.chunk), buf); err != nil {
			return err
		}
		m.chunk++
	}
	return nil
}

// finish deletes the merged runs' chunks and returns runs with the merged
// run in their place.
func (b buckets) finish(m *merge, runs []run) ([]run, error) {
	if err := b.deleteRun(m.x); err != nil {
		return nil, err
	}
	if err := b.deleteRun(m.y); err != nil {
		return nil, err
	}
	i := slices.Index(runs, m.x)
	if i < 0 || i+1 >= len(runs) || runs[i+1] != m.y {
		return nil, fmt.Errorf("dedup runs at %d and %d are not in the run list", m.x.start, m.y.start)
	}
	return slices.Replace(slices.Clone(runs), i, i+2, m.out), nil
}

// dueMerge returns the first two adjacent runs of equal size, if any: runs
// merge as a binary counter carries, so that there are O(log n) of them.
func dueMerge(runs []run) (*merge, bool) {
	for i := 0; i+1 < len(runs); i++ {
		if runs[i].count == runs[i+1].count {
			return newMerge(runs[i], runs[i+1]), true
		}
	}
	return nil, false
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
