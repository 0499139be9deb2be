package boltlog

import "encoding/binary"

// A bloom is a Bloom filter over 8-byte leaf-hash prefixes, which are
// uniformly distributed already, so two 32-bit halves of the prefix give the
// k probe positions by double hashing. Twelve bits per entry and six probes
// keep false positives, each a look at the dedup runs on disk, rare.
type bloom struct {
	bits     []uint64
	m        uint64 // number of bits
	n, limit int    // entries added; entries it was sized for
}

const bloomK = 6

func newBloom(capacity int) *bloom {
	if capacity < 1<<16 {
		capacity = 1 << 16
	}
	m := uint64(capacity) * 12
	return &bloom{bits: make([]uint64, (m+63)/64), m: m, limit: capacity}
}

func (b *bloom) positions(prefix []byte, f func(bit uint64) bool) bool {
	v := binary.BigEndian.Uint64(prefix)
	h1, h2 := v&0xffffffff, v>>32|1
	for i := uint64(0); i < bloomK; i++ {
		if !f((h1 + i*h2) % b.m) {
			return false
		}
	}
	return true
}

func (b *bloom) add(prefix []byte) {
	b.positions(prefix, func(bit uint64) bool {
		b.bits[bit/64] |= 1 << (bit % 64)
		return true
	})
	b.n++
}

func (b *bloom) mayContain(prefix []byte) bool {
	return b.positions(prefix, func(bit uint64) bool {
		return b.bits[bit/64]&(1<<(bit%64)) != 0
	})
}

func (b *bloom) full() bool { return b.n > b.limit }
