// Package merkle defines the append-only transparency log that holds every
// custody event, and the pure functions that check what such a log publishes.
//
// # The log
//
// [Log] is the contract every backend meets: the embedded log in
// merkle/boltlog and the Trillian-backed log in merkle/trillianlog. Both run
// the conformance suite in merkle/logtest, as does merkle/tilelog's
// read-only Mirror, a verified copy of another server's log.
//
// # Formats
//
// Hashing follows RFC 6962 (leaf = SHA-256(0x00 || leaf), node =
// SHA-256(0x01 || left || right)): the hashes are computed with
// golang.org/x/mod/sumdb/tlog, and the tree arithmetic (compact ranges,
// which nodes a proof holds) is github.com/transparency-dev/merkle's.
// Checkpoints are C2SP tlog-checkpoint
// bodies signed as C2SP signed notes with an Ed25519 log key
// (golang.org/x/mod/sumdb/note). An inclusion proof of one entry can be written
// as a C2SP tlog-proof@v1 ([FormatProof], [ParseProof]).
//
// # Verification
//
// [VerifyInclusion], [VerifyConsistency], [ParseCheckpoint] and
// [VerifyProof] need nothing but bytes and keys: no storage, no network.
package merkle
