// Package tilelog reads a remote transparency log through its C2SP
// tlog-tiles API (https://c2sp.org/tlog-tiles: /checkpoint, /tile/<L>/<N>,
// /tile/entries/<N>) and keeps a verified, read-only copy of it.
//
// A [Client] verifies everything the origin says against what was pinned
// or verified before: a checkpoint against the log key (and a witness
// policy), consistency between two checkpoints and every entry against a
// checkpoint's root, from hash tiles that x/mod's tlog.TileHashReader
// authenticates. It trusts nothing the origin serves beyond its
// signatures.
//
// A [Mirror] is a [merkle.TileLog] over a local copy: it follows the
// origin with a Client, appends only entries that verified, and publishes
// the origin's own signed checkpoint once its local tree has that
// checkpoint's root. provd --mirror serves its history pages and bundles
// from a Mirror, so that they are byte for byte the origin's for the same
// checkpoint.
//
// # Errors
//
// Failures fall in two kinds. [ErrUnavailable]: the origin did not answer,
// or answered with a body that is not well formed; it proves nothing about
// the log, and a Mirror asks again later. [ErrInconsistent]: the origin
// served something its signature contradicts or that contradicts a
// checkpoint verified before (a fork, a tree that shrank, an entry or a
// tile that does not hash to the signed root); a Mirror stops following
// and keeps what it verified.
//
// # Caveats
//
// The local storage keeps each leaf once (boltlog deduplicates), so a log
// holding the same leaf twice cannot be mirrored: the Mirror stops at the
// second copy with ErrInconsistent.
package tilelog
