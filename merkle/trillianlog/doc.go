// Package trillianlog implements [merkle.Log] over the gRPC API of a
// Trillian log server (github.com/google/trillian), so that several provd
// replicas can share one log kept in MySQL or MariaDB.
//
// Trillian holds the leaves and the Merkle tree and serves proofs; this
// package adds what the [merkle.Log] contract asks for on top: appends that
// return only once the leaves are in the tree, deduplication, range checks
// with [merkle.RangeError], and checkpoints signed with our own log key.
//
// # QueueLeaf on a LOG tree
//
// The tree must be a Trillian LOG tree (not PREORDERED_LOG): Append sends
// each leaf with QueueLeaf and Trillian's signer assigns the indices.
// AddSequencedLeaves on a PREORDERED_LOG tree appends several times
// faster (docs/scale-out.md has both figures), but there the client picks
// the indices: two replicas appending at once would pick the same ones, so
// the faster mode needs a single sequencing writer, or a lease with fencing
// tokens that Trillian does not check. QueueLeaf makes Trillian the single
// sequencer, and any number of replicas may append; the price is latency
// (a leaf waits for the signer's next pass, --sequencer_interval) and
// throughput bounded by one signer per tree.
//
// # Append
//
// Each leaf is sent with its RFC 6962 leaf hash as Trillian's
// LeafIdentityHash, so Trillian's own dedup applies: a leaf already queued
// or integrated, by this replica or another, comes back ALREADY_EXISTS and
// Append returns its existing index. The leaves of one Append call are
// queued one after another, so Trillian (which sequences by queue time)
// gives them increasing indices. That order holds as long as the log
// servers a replica talks to agree on the time to better than the few
// milliseconds between two QueueLeaf calls (one log server, or NTP).
// Leaves of concurrent Append calls interleave.
//
// Append then waits until every leaf is integrated. One watcher goroutine
// per Log polls GetLatestSignedLogRoot while appends wait (every
// Config.PollInterval, backing off up to Config.MaxPollInterval while the
// tree does not grow), reads the new leaves with GetLeavesByRange, and
// hands each waiting Append the indices of its leaves: one poll serves
// every appender. A leaf that came back ALREADY_EXISTS and was integrated
// earlier is found with GetInclusionProofByHash.
//
// # Checkpoints
//
// Checkpoint takes Trillian's latest root (size and root hash, from a
// LogRootV1 whose format is checked), checks that it is consistent with the
// last root this Log signed (Trillian sends the consistency proof with the
// root), and signs a C2SP checkpoint over it with Config.Signer. The log
// key is ours, never Trillian's: Trillian's roots are not signed at all
// since Trillian 1.4. A Log never signs a root that is not an extension of
// one it signed before, and never returns a checkpoint smaller than one it
// returned before. The signed checkpoint is cached until the tree grows.
//
// # Tiles
//
// A Log is a [merkle.TileLog], so a replica serves the C2SP tlog-tiles read
// API like the embedded log. Entry bundles and level-0 tiles are one
// GetLeavesByRange each. Trillian serves no other hash of the tree but
// inside proofs, so a hash of a level L >= 1 tile, the root of a complete
// subtree of 256^L leaves, is computed from the subtree's first leaf and
// that leaf's inclusion proof: two calls a hash, up to 512 for a level-1
// tile, kept afterwards with the proofs' hashes (Config.ProofCacheNodes).
//
// # Caveats
//
// Append with a context that ends after some leaves were queued returns
// the context's error, but Trillian integrates the queued leaves anyway;
// a retry finds them (dedup) and returns their indices. The tree must use
// the RFC6962_SHA256 hash strategy (the default of createtree). Leaves are
// at most [merkle.MaxLeafSize] bytes, which Trillian's MySQL schema
// (LONGBLOB) holds.
package trillianlog
