// Package boltlog implements [merkle.Log] on a bbolt file.
//
// The caller opens the bbolt database and passes it in [Config], so the log
// can share one file with whatever else the caller keeps (the provenance
// index does). The log keeps everything under one top-level bucket named
// "merkle-log" and never touches the caller's buckets.
//
// # Group commit
//
// Concurrent Append calls are queued to a single committer, which takes every
// request waiting (up to Config.MaxBatch leaves, lingering up to
// Config.MaxWait for more) and writes them in one bbolt transaction: one
// commit, which bbolt makes durable with two fdatasyncs. A lone appender
// therefore waits for about two fsyncs; many appenders share them. Leaf
// hashing happens on the callers' goroutines, before the queue.
//
// # Storage
//
// Leaves are stored per commit, one value holding every leaf of the batch,
// keyed by the index of its first leaf. Merkle hashes are stored at every even
// level of the tree (levels 0, 2, 4, ...) in chunks of 126 hashes, which fill
// one 4 KiB page each; an odd-level hash is one SHA-256 of two stored
// children. A proof therefore reads O(log n) hashes and never a leaf. The
// levels 8L are exactly the C2SP tlog-tiles hashes of tile level L.
//
// Deduplication keeps a sorted run of (8-byte leaf-hash prefix, 5-byte index)
// per 4096 leaves, merged pairwise like a binomial heap so that at most
// log2(n/4096) runs exist, plus an in-memory table of the leaves since the
// last run. The list of runs is stored with the size; memory holds only
// their bounds. A lookup reads each run where the prefix would be: prefixes
// of SHA-256 hashes are uniform, so the chunk is guessed from the prefix's
// value and the guess narrowed, a few page reads a run. Only a prefix match
// reads the stored leaf hash to confirm.
//
// A small merge is written in the commit that makes it due. A large one is
// written in transactions of a bounded number of chunks, whenever no append
// waits, under keys of its own (the top bit of the run start set, or not,
// unlike its first run's), while lookups still read the two runs; its last
// transaction swaps it into the run list and deletes them. A merge cut
// short by a crash is done again from its start: the merged run is the
// same. So no transaction holds more than a bounded amount of dedup
// entries in memory, however long the log.
//
// # Storage format
//
// The meta bucket records the format, "boltlog/v2". A "boltlog/v1" file,
// which had no run list (its runs followed from its size, all merged in
// the commit that made them due), is upgraded at Open by recording that
// list; a binary that knows only v1 refuses the file afterwards.
//
// # Caveats
//
// Indices are limited to 2^40 (the dedup entries store five bytes). The
// database must not be opened with NoSync, or Append's durability promise
// is void. A new leaf costs a lookup in every run. Reopening reads the
// leaf hashes of the leaves since the last run, fewer than 4096.
package boltlog
