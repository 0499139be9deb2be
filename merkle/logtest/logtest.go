// Package logtest is the conformance suite every [merkle.Log] runs.
//
// An implementation's tests call [Run] with a [Config] whose Open function
// opens the log under test in a directory the suite chooses:
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, logtest.Config{
//			Open: func(t *testing.T, dir string) logtest.Instance {
//				// open or reopen the log stored under dir; keep its key there too
//			},
//			Reopenable: true,
//		})
//	}
//
// Every proof the log returns is checked with verifiers that are not this
// project's: golang.org/x/mod/sumdb/tlog and
// github.com/transparency-dev/merkle/proof, and every root is recomputed
// independently with tlog.
//
// # What it checks
//
// Each check is a subtest on a fresh directory; every Instance is closed at
// the end of its subtest.
//
//   - Empty, AppendAndRead: indices from 0; Leaves returns the appended
//     bytes, as copies; the log copies what Append is given; every
//     checkpoint verifies and has the independently computed root.
//   - Dedup: an identical leaf, in the same batch or a later one, gets its
//     first index and does not grow the tree.
//   - Proofs: 300 leaves appended one at a time, a checkpoint after each;
//     every inclusion proof and every consistency proof among those sizes.
//     merkle.InclusionProofs (the log's own, if it is a
//     merkle.MultiProver) gives the same proofs, of every index at each
//     size, in reverse and one repeated.
//   - TamperedProofs: sampled proofs with a flipped bit, a hash missing or
//     added, or a neighbouring size, do not verify.
//   - InvalidLeaves: empty and MaxLeafSize+1 leaves fail with
//     merkle.ErrInvalidLeaf and a batch holding one appends none of it; a
//     leaf of exactly MaxLeafSize is accepted.
//   - OutOfRange: bad ranges return a *merkle.RangeError (matching
//     merkle.ErrOutOfRange) whose A and B are the arguments as given and
//     whose TreeSize is the log's size; nothing panics. InclusionProofs
//     too, naming the bad index.
//   - Concurrent: 32 goroutines append 50 leaves each, plus one leaf they
//     all append; indices are distinct, each holds its leaf, a checkpoint
//     taken after an Append covers it, and every checkpoint is consistent
//     with the final one.
//   - Reopen: same size, root, key and proofs after reopening; dedup still
//     finds old leaves; appends continue at the next index.
//   - CancelledContext: Append with a cancelled context fails with an error
//     matching context.Canceled and appends nothing.
//   - Closed: every method returns merkle.ErrClosed after Close.
//   - Tiles (a merkle.TileLog only): over 515 leaves, full and partial
//     hash tiles of levels 0 and 1 and entry bundles equal what tlog
//     computes from the reference tree; tiles the tree does not hold yet,
//     and widths out of 1..256, are *merkle.RangeError.
package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// An Instance is an open log under test.
type Instance struct {
	// Log is the log under test.
	Log merkle.Log
	// Verifier verifies the log's checkpoints.
	Verifier note.Verifier
	// Origin is the origin line of the log's checkpoints.
	Origin string
	// Close closes the log. After it returns, every method of Log must
	// return an error matching merkle.ErrClosed. The suite calls it once.
	Close func() error
}

// Config describes the implementation under test.
type Config struct {
	// Open opens the log stored under dir, creating it if dir is empty. The
	// suite calls it again on the same dir after closing the first Instance
	// to test reopening; the reopened log must sign with the same key, so
	// keep the key under dir too (or derive it from dir). Open reports its
	// own failures with t.Fatal.
	Open func(t *testing.T, dir string) Instance
	// Reopenable is false for backends where closing and reopening the same
	// dir is not meaningful; the reopen test is then skipped.
	Reopenable bool
}

// MaxProofSize is the largest tree size for which the suite checks every
// inclusion and every consistency proof.
const MaxProofSize = 300

// A check is one conformance test. It returns an error that says exactly
// what was wrong, so that the suite's own tests can run it against broken
// logs.
type check struct {
	name       string
	needReopen bool
	run        func(t *testing.T, cfg Config) error
}

func checks() []check {
	return []check{
		{name: "Empty", run: checkEmpty},
		{name: "AppendAndRead", run: checkAppendAndRead},
		{name: "Dedup", run: checkDedup},
		{name: "Proofs", run: checkProofs},
		{name: "TamperedProofs", run: checkTamperedProofs},
		{name: "InvalidLeaves", run: checkInvalidLeaves},
		{name: "OutOfRange", run: checkOutOfRange},
		{name: "Concurrent", run: checkConcurrent},
		{name: "Reopen", needReopen: true, run: checkReopen},
		{name: "CancelledContext", run: checkCancelled},
		{name: "Closed", run: checkClosed},
		{name: "Tiles", run: checkTiles},
	}
}

// Run runs the conformance suite against the log cfg opens, each check as a
// subtest on its own directory from t.TempDir.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Open == nil {
		t.Fatal("logtest.Config.Open is nil")
	}
	for _, c := range checks() {
		t.Run(c.name, func(t *testing.T) {
			if c.needReopen && !cfg.Reopenable {
				t.Skip("the log is not reopenable")
			}
			if err := c.run(t, cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// handle is an Instance whose Close runs at most once, and at the end of the
// test if the check did not close it.
type handle struct {
	Instance
	once     sync.Once
	closeErr error
}

func open(t *testing.T, cfg Config, dir string) *handle {
	t.Helper()
	h := &handle{Instance: cfg.Open(t, dir)}
	if h.Log == nil || h.Verifier == nil || h.Close == nil {
		t.Fatal("logtest: Open returned an Instance without Log, Verifier or Close")
	}
	t.Cleanup(func() {
		if err := h.close(); err != nil {
			t.Errorf("close log: %v", err)
		}
	})
	return h
}

func (h *handle) close() error {
	h.once.Do(func() { h.closeErr = h.Close() })
	return h.closeErr
}

// call runs f, turning a panic into an error.
func call(what string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s panicked: %v", what, r)
		}
	}()
	return f()
}

// testLeaf returns a distinct leaf for index i of a test identified by tag.
func testLeaf(tag string, i int) []byte {
	return fmt.Appendf(nil, "logtest %s leaf %d", tag, i)
}

// refTree computes roots independently of the log and of package merkle,
// with x/mod tlog over stored hashes kept in memory.
type refTree struct {
	stored []tlog.Hash
	leaves [][]byte
}

func (r *refTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(r.stored)) {
			return nil, fmt.Errorf("stored hash %d out of range", x)
		}
		out[i] = r.stored[x]
	}
	return out, nil
}

func (r *refTree) add(leaf []byte) {
	hs, err := tlog.StoredHashes(int64(len(r.leaves)), leaf, r)
	if err != nil {
		panic(err) // cannot happen: ReadHashes only reads what was stored
	}
	r.stored = append(r.stored, hs...)
	r.leaves = append(r.leaves, leaf)
}

func (r *refTree) size() uint64 { return uint64(len(r.leaves)) }

func (r *refTree) root(n uint64) merkle.Hash {
	if n == 0 {
		return merkle.Hash(rfc6962.DefaultHasher.EmptyRoot())
	}
	h, err := tlog.TreeHash(int64(n), r)
	if err != nil {
		panic(err)
	}
	return merkle.Hash(h)
}

func (r *refTree) leafHash(i uint64) merkle.Hash { return merkle.Hash(tlog.RecordHash(r.leaves[i])) }

// checkpoint fetches and verifies the log's checkpoint and checks it against
// the reference tree, whose size it must have.
func checkpoint(ctx context.Context, h *handle, ref *refTree) (merkle.Checkpoint, error) {
	var cp merkle.Checkpoint
	err := call("Checkpoint", func() (err error) { cp, err = h.Log.Checkpoint(ctx); return err })
	if err != nil {
		return cp, fmt.Errorf("checkpoint: %w", err)
	}
	parsed, err := merkle.ParseCheckpoint(cp.Note, h.Origin, h.Verifier)
	if err != nil {
		return cp, fmt.Errorf("checkpoint returned a note that does not verify with the log's verifier and origin %q: %w\n%s", h.Origin, err, cp.Note)
	}
	if parsed.Origin != cp.Origin || parsed.Size != cp.Size || parsed.Root != cp.Root {
		return cp, fmt.Errorf("checkpoint fields (%q, %d, %v) differ from its signed note (%q, %d, %v)", cp.Origin, cp.Size, cp.Root, parsed.Origin, parsed.Size, parsed.Root)
	}
	if cp.Size != ref.size() {
		return cp, fmt.Errorf("checkpoint size is %d after %d distinct leaves were appended", cp.Size, ref.size())
	}
	if want := ref.root(cp.Size); cp.Root != want {
		return cp, fmt.Errorf("checkpoint root for size %d is %v; computed independently: %v", cp.Size, cp.Root, want)
	}
	return cp, nil
}

// appendLeaves appends leaves and checks they got the indices want.
func appendLeaves(ctx context.Context, h *handle, leaves [][]byte, want []uint64) error {
	var got []uint64
	err := call("Append", func() (err error) { got, err = h.Log.Append(ctx, leaves); return err })
	if err != nil {
		return fmt.Errorf("append of %d leaves: %w", len(leaves), err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("append of %d leaves returned %d indices %v, want %v", len(leaves), len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			return fmt.Errorf("append of %d leaves (the first %q) returned indices %v, want %v", len(leaves), leaves[0], got, want)
		}
	}
	return nil
}

// appendNew appends leaves that are all new and adds them to ref.
func appendNew(ctx context.Context, h *handle, ref *refTree, leaves [][]byte) error {
	want := make([]uint64, len(leaves))
	for i := range want {
		want[i] = ref.size() + uint64(i)
	}
	if err := appendLeaves(ctx, h, leaves, want); err != nil {
		return err
	}
	for _, l := range leaves {
		ref.add(bytes.Clone(l))
	}
	return nil
}

// leavesEqual checks that Leaves(start, end) returns ref's leaves.
func leavesEqual(ctx context.Context, h *handle, ref *refTree, start, end uint64) error {
	var got [][]byte
	err := call("Leaves", func() (err error) { got, err = h.Log.Leaves(ctx, start, end); return err })
	if err != nil {
		return fmt.Errorf("Leaves(%d, %d): %w", start, end, err)
	}
	if uint64(len(got)) != end-start {
		return fmt.Errorf("Leaves(%d, %d) returned %d leaves, want %d", start, end, len(got), end-start)
	}
	for i, l := range got {
		if want := ref.leaves[start+uint64(i)]; !bytes.Equal(l, want) {
			return fmt.Errorf("Leaves(%d, %d): leaf %d is %q, want %q", start, end, start+uint64(i), l, want)
		}
	}
	return nil
}

func checkEmpty(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	if _, err := checkpoint(ctx, h, ref); err != nil {
		return fmt.Errorf("new log: %w", err)
	}
	if err := leavesEqual(ctx, h, ref, 0, 0); err != nil {
		return fmt.Errorf("new log: %w", err)
	}
	if err := consistencyOK(ctx, h, ref, 0, 0); err != nil {
		return fmt.Errorf("new log: %w", err)
	}
	return nil
}

func checkAppendAndRead(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	batches := []int{1, 3, 10, 1, 17}
	n := 0
	for _, size := range batches {
		leaves := make([][]byte, size)
		for i := range leaves {
			leaves[i] = testLeaf("read", n)
			n++
		}
		if err := appendNew(ctx, h, ref, leaves); err != nil {
			return err
		}
		// The log must copy the leaves: the caller may reuse its buffers.
		for _, l := range leaves {
			l[0] ^= 0xff
		}
		if _, err := checkpoint(ctx, h, ref); err != nil {
			return fmt.Errorf("after appending %d leaves and overwriting the caller's buffers: %w", ref.size(), err)
		}
	}
	if err := leavesEqual(ctx, h, ref, 0, ref.size()); err != nil {
		return fmt.Errorf("after the caller overwrote the buffers it passed to Append: %w", err)
	}

	size := ref.size()
	for _, r := range [][2]uint64{{0, size}, {0, 1}, {size - 1, size}, {3, 14}, {size, size}, {5, 5}} {
		if err := leavesEqual(ctx, h, ref, r[0], r[1]); err != nil {
			return err
		}
	}
	// Leaves returns copies: changing them does not change the log.
	got, err := h.Log.Leaves(ctx, 0, size)
	if err != nil {
		return fmt.Errorf("Leaves(0, %d): %w", size, err)
	}
	for _, l := range got {
		for i := range l {
			l[i] = 'Z'
		}
	}
	if err := leavesEqual(ctx, h, ref, 0, size); err != nil {
		return fmt.Errorf("after the caller overwrote the slices Leaves returned: %w", err)
	}
	return nil
}

func checkDedup(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	a, b, c, d := testLeaf("dedup", 0), testLeaf("dedup", 1), testLeaf("dedup", 2), testLeaf("dedup", 3)

	// Within a batch.
	if err := appendLeaves(ctx, h, [][]byte{a, b, a, bytes.Clone(b), a}, []uint64{0, 1, 0, 1, 0}); err != nil {
		return fmt.Errorf("duplicates within a batch: %w", err)
	}
	ref.add(a)
	ref.add(b)
	if _, err := checkpoint(ctx, h, ref); err != nil {
		return fmt.Errorf("after a batch with duplicates: %w", err)
	}
	// Across batches, mixed with new leaves.
	if err := appendLeaves(ctx, h, [][]byte{c, bytes.Clone(a), d, c}, []uint64{2, 0, 3, 2}); err != nil {
		return fmt.Errorf("duplicates across batches: %w", err)
	}
	ref.add(c)
	ref.add(d)
	for i, l := range [][]byte{a, b, c, d} {
		if err := appendLeaves(ctx, h, [][]byte{bytes.Clone(l)}, []uint64{uint64(i)}); err != nil {
			return fmt.Errorf("re-appending leaf %d alone: %w", i, err)
		}
	}
	if _, err := checkpoint(ctx, h, ref); err != nil {
		return fmt.Errorf("after re-appending every leaf: %w", err)
	}
	if err := leavesEqual(ctx, h, ref, 0, ref.size()); err != nil {
		return err
	}
	// A leaf that differs only in its last byte is not a duplicate.
	e := append(bytes.Clone(a), '!')
	if err := appendNew(ctx, h, ref, [][]byte{e}); err != nil {
		return fmt.Errorf("a leaf extending an existing one: %w", err)
	}
	return nil
}

// proofLog is a log of MaxProofSize leaves with the verified roots of every
// size, shared by the proof checks.
type proofLog struct {
	h     *handle
	ref   *refTree
	roots []merkle.Hash // by size, 0..MaxProofSize
}

func newProofLog(t *testing.T, cfg Config, n int) (*proofLog, error) {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	pl := &proofLog{h: h, ref: &refTree{}}
	cp, err := checkpoint(ctx, h, pl.ref)
	if err != nil {
		return nil, err
	}
	pl.roots = append(pl.roots, cp.Root)
	for i := range n {
		if err := appendNew(ctx, h, pl.ref, [][]byte{testLeaf("proofs", i)}); err != nil {
			return nil, err
		}
		cp, err := checkpoint(ctx, h, pl.ref)
		if err != nil {
			return nil, fmt.Errorf("after appending leaf %d: %w", i, err)
		}
		pl.roots = append(pl.roots, cp.Root)
	}
	return pl, nil
}

func inclusionProof(ctx context.Context, h *handle, index, size uint64) ([]merkle.Hash, error) {
	var p []merkle.Hash
	err := call("InclusionProof", func() (err error) { p, err = h.Log.InclusionProof(ctx, index, size); return err })
	if err != nil {
		return nil, fmt.Errorf("InclusionProof(%d, %d): %w", index, size, err)
	}
	return p, nil
}

func consistencyProof(ctx context.Context, h *handle, oldSize, newSize uint64) ([]merkle.Hash, error) {
	var p []merkle.Hash
	err := call("ConsistencyProof", func() (err error) { p, err = h.Log.ConsistencyProof(ctx, oldSize, newSize); return err })
	if err != nil {
		return nil, fmt.Errorf("ConsistencyProof(%d, %d): %w", oldSize, newSize, err)
	}
	return p, nil
}

// verifyInclusion checks p with x/mod tlog, transparency-dev/merkle and
// package merkle, and returns the first failure.
func verifyInclusion(leafHash merkle.Hash, index, size uint64, root merkle.Hash, p []merkle.Hash) error {
	if err := tlog.CheckRecord(toTlog(p), int64(size), tlog.Hash(root), int64(index), tlog.Hash(leafHash)); err != nil {
		return fmt.Errorf("x/mod tlog.CheckRecord: %w", err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash[:], toBytes(p), root[:]); err != nil {
		return fmt.Errorf("transparency-dev proof.VerifyInclusion: %w", err)
	}
	if err := merkle.VerifyInclusion(leafHash, index, size, root, p); err != nil {
		return fmt.Errorf("merkle.VerifyInclusion: %w", err)
	}
	return nil
}

// verifyConsistency checks p with x/mod tlog (for oldSize > 0),
// transparency-dev/merkle and package merkle.
func verifyConsistency(oldSize, newSize uint64, oldRoot, newRoot merkle.Hash, p []merkle.Hash) error {
	if oldSize > 0 {
		if err := tlog.CheckTree(toTlog(p), int64(newSize), tlog.Hash(newRoot), int64(oldSize), tlog.Hash(oldRoot)); err != nil {
			return fmt.Errorf("x/mod tlog.CheckTree: %w", err)
		}
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, oldSize, newSize, toBytes(p), oldRoot[:], newRoot[:]); err != nil {
		return fmt.Errorf("transparency-dev proof.VerifyConsistency: %w", err)
	}
	if err := merkle.VerifyConsistency(oldSize, newSize, oldRoot, newRoot, p); err != nil {
		return fmt.Errorf("merkle.VerifyConsistency: %w", err)
	}
	return nil
}

func inclusionOK(ctx context.Context, h *handle, ref *refTree, index, size uint64) error {
	p, err := inclusionProof(ctx, h, index, size)
	if err != nil {
		return err
	}
	if err := verifyInclusion(ref.leafHash(index), index, size, ref.root(size), p); err != nil {
		return fmt.Errorf("InclusionProof(%d, %d) returned %d hashes that do not verify: %w", index, size, len(p), err)
	}
	return nil
}

func consistencyOK(ctx context.Context, h *handle, ref *refTree, oldSize, newSize uint64) error {
	p, err := consistencyProof(ctx, h, oldSize, newSize)
	if err != nil {
		return err
	}
	if err := verifyConsistency(oldSize, newSize, ref.root(oldSize), ref.root(newSize), p); err != nil {
		return fmt.Errorf("ConsistencyProof(%d, %d) returned %d hashes that do not verify: %w", oldSize, newSize, len(p), err)
	}
	return nil
}

func checkProofs(t *testing.T, cfg Config) error {
	return checkProofsUpTo(t, cfg, MaxProofSize)
}

// checkProofsUpTo checks every inclusion proof and every consistency proof
// in trees of up to n leaves, against roots from the log's own checkpoints
// (which checkpoint has already compared to independently computed roots).
func checkProofsUpTo(t *testing.T, cfg Config, n int) error {
	ctx := t.Context()
	pl, err := newProofLog(t, cfg, n)
	if err != nil {
		return err
	}
	for size := uint64(1); size <= uint64(n); size++ {
		var indexes []uint64
		var proofs [][]merkle.Hash
		for index := range size {
			p, err := inclusionProof(ctx, pl.h, index, size)
			if err != nil {
				return err
			}
			if err := verifyInclusion(pl.ref.leafHash(index), index, size, pl.roots[size], p); err != nil {
				return fmt.Errorf("InclusionProof(%d, %d) returned %d hashes that do not verify against the checkpoint of size %d: %w", index, size, len(p), size, err)
			}
			// Last first, and the first twice: the order asked, not the log's.
			indexes, proofs = append([]uint64{index}, indexes...), append([][]merkle.Hash{p}, proofs...)
		}
		indexes, proofs = append(indexes, 0), append(proofs, proofs[len(proofs)-1])
		var got [][]merkle.Hash
		err := call("InclusionProofs", func() (err error) { got, err = merkle.InclusionProofs(ctx, pl.h.Log, indexes, size); return err })
		if err != nil {
			return fmt.Errorf("InclusionProofs(%v, %d): %w", indexes, size, err)
		}
		if len(got) != len(indexes) {
			return fmt.Errorf("InclusionProofs(%v, %d) returned %d proofs", indexes, size, len(got))
		}
		for i := range got {
			if !slices.Equal(got[i], proofs[i]) {
				return fmt.Errorf("InclusionProofs(%v, %d)[%d] = %v, InclusionProof(%d, %d) = %v", indexes, size, i, got[i], indexes[i], size, proofs[i])
			}
		}
	}
	for newSize := uint64(0); newSize <= uint64(n); newSize++ {
		for oldSize := uint64(0); oldSize <= newSize; oldSize++ {
			p, err := consistencyProof(ctx, pl.h, oldSize, newSize)
			if err != nil {
				return err
			}
			if err := verifyConsistency(oldSize, newSize, pl.roots[oldSize], pl.roots[newSize], p); err != nil {
				return fmt.Errorf("ConsistencyProof(%d, %d) returned %d hashes that do not verify against the checkpoints of those sizes: %w", oldSize, newSize, len(p), err)
			}
		}
	}
	return nil
}

// checkTamperedProofs checks that proofs the log returns are not accepted
// once altered: each hash with one bit flipped, a wrong size, a proof too
// short or too long. It samples pairs with a fixed seed.
func checkTamperedProofs(t *testing.T, cfg Config) error {
	ctx := t.Context()
	const n = 100
	pl, err := newProofLog(t, cfg, n)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(6962, 1))
	for range 300 {
		size := 1 + rng.Uint64N(n)
		index := rng.Uint64N(size)
		p, err := inclusionProof(ctx, pl.h, index, size)
		if err != nil {
			return err
		}
		leafHash, root := pl.ref.leafHash(index), pl.roots[size]
		if err := verifyInclusion(leafHash, index, size, root, p); err != nil {
			return fmt.Errorf("InclusionProof(%d, %d) does not verify: %w", index, size, err)
		}
		for _, bad := range tamper(rng, p) {
			if err := verifyInclusion(leafHash, index, size, root, bad.proof); err == nil {
				return fmt.Errorf("InclusionProof(%d, %d) still verifies with %s", index, size, bad.what)
			}
		}
		if size < n {
			if err := verifyInclusion(leafHash, index, size+1, pl.roots[size+1], p); err == nil {
				return fmt.Errorf("InclusionProof(%d, %d) also verifies for size %d", index, size, size+1)
			}
		}
		if size-1 > index {
			if err := verifyInclusion(leafHash, index, size-1, pl.roots[size-1], p); err == nil {
				return fmt.Errorf("InclusionProof(%d, %d) also verifies for size %d", index, size, size-1)
			}
		}
	}
	for range 300 {
		newSize := 2 + rng.Uint64N(n-1)
		oldSize := 1 + rng.Uint64N(newSize-1) // 1 <= oldSize < newSize
		p, err := consistencyProof(ctx, pl.h, oldSize, newSize)
		if err != nil {
			return err
		}
		oldRoot, newRoot := pl.roots[oldSize], pl.roots[newSize]
		if err := verifyConsistency(oldSize, newSize, oldRoot, newRoot, p); err != nil {
			return fmt.Errorf("ConsistencyProof(%d, %d) does not verify: %w", oldSize, newSize, err)
		}
		for _, bad := range tamper(rng, p) {
			if err := verifyConsistency(oldSize, newSize, oldRoot, newRoot, bad.proof); err == nil {
				return fmt.Errorf("ConsistencyProof(%d, %d) still verifies with %s", oldSize, newSize, bad.what)
			}
		}
		if newSize < n {
			if err := verifyConsistency(oldSize, newSize+1, oldRoot, pl.roots[newSize+1], p); err == nil {
				return fmt.Errorf("ConsistencyProof(%d, %d) also verifies for new size %d", oldSize, newSize, newSize+1)
			}
		}
		if oldSize > 1 {
			if err := verifyConsistency(oldSize-1, newSize, pl.roots[oldSize-1], newRoot, p); err == nil {
				return fmt.Errorf("ConsistencyProof(%d, %d) also verifies for old size %d", oldSize, newSize, oldSize-1)
			}
		}
	}
	return nil
}

type tampered struct {
	what  string
	proof []merkle.Hash
}

// tamper returns altered copies of p: each hash with one random bit flipped,
// p without its last hash, p with an extra hash.
func tamper(rng *rand.Rand, p []merkle.Hash) []tampered {
	var out []tampered
	for i := range p {
		q := append([]merkle.Hash(nil), p...)
		bit := rng.IntN(8 * merkle.HashSize)
		q[i][bit/8] ^= 1 << (bit % 8)
		out = append(out, tampered{fmt.Sprintf("bit %d of hash %d flipped", bit, i), q})
	}
	if len(p) > 0 {
		out = append(out, tampered{"its last hash removed", p[:len(p)-1]})
	}
	extra := append(append([]merkle.Hash(nil), p...), merkle.Hash{})
	out = append(out, tampered{"a zero hash appended", extra})
	return out
}

func checkInvalidLeaves(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	if err := appendNew(ctx, h, ref, [][]byte{testLeaf("invalid", 0), testLeaf("invalid", 1)}); err != nil {
		return err
	}
	good := testLeaf("invalid", 2)
	tooBig := bytes.Repeat([]byte{'x'}, merkle.MaxLeafSize+1)
	tests := []struct {
		name  string
		batch [][]byte
	}{
		{"an empty leaf", [][]byte{{}}},
		{"a nil leaf", [][]byte{nil}},
		{"a leaf of MaxLeafSize+1 bytes", [][]byte{tooBig}},
		{"a batch with an empty leaf after a good one", [][]byte{good, testLeaf("invalid", 3), {}}},
		{"a batch with an oversize leaf before good ones", [][]byte{tooBig, good, testLeaf("invalid", 4)}},
		{"a batch with an empty leaf between good ones", [][]byte{testLeaf("invalid", 5), nil, good}},
	}
	for _, tc := range tests {
		var idx []uint64
		err := call("Append", func() (err error) { idx, err = h.Log.Append(ctx, tc.batch); return err })
		if !errors.Is(err, merkle.ErrInvalidLeaf) {
			return fmt.Errorf("append of %s = %v, %v; want an error matching merkle.ErrInvalidLeaf", tc.name, idx, err)
		}
		if _, err := checkpoint(ctx, h, ref); err != nil {
			return fmt.Errorf("after the failed Append of %s: %w", tc.name, err)
		}
	}
	// The good leaves of the failed batches were not appended: they are new.
	if err := appendNew(ctx, h, ref, [][]byte{good, testLeaf("invalid", 3)}); err != nil {
		return fmt.Errorf("after failed batches (a good leaf of a failed batch must not be in the log): %w", err)
	}
	maxLeaf := bytes.Repeat([]byte{'m'}, merkle.MaxLeafSize)
	if err := appendNew(ctx, h, ref, [][]byte{maxLeaf}); err != nil {
		return fmt.Errorf("a leaf of exactly MaxLeafSize bytes: %w", err)
	}
	if err := leavesEqual(ctx, h, ref, 0, ref.size()); err != nil {
		return err
	}
	if err := inclusionOK(ctx, h, ref, ref.size()-1, ref.size()); err != nil {
		return err
	}
	_, err := checkpoint(ctx, h, ref)
	return err
}

func checkOutOfRange(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	const size = 5
	for i := range size {
		if err := appendNew(ctx, h, ref, [][]byte{testLeaf("range", i)}); err != nil {
			return err
		}
	}
	const maxU = math.MaxUint64
	type op struct {
		name string
		a, b uint64
		call func(a, b uint64) error
	}
	leaves := func(a, b uint64) error { _, err := h.Log.Leaves(ctx, a, b); return err }
	incl := func(a, b uint64) error { _, err := h.Log.InclusionProof(ctx, a, b); return err }
	cons := func(a, b uint64) error { _, err := h.Log.ConsistencyProof(ctx, a, b); return err }
	// merkle.InclusionProofs: at a good size, the bad index after a good
	// one.
	multi := func(a, b uint64) error {
		indexes := []uint64{a}
		if b > 0 && b <= size {
			indexes = []uint64{0, a}
		}
		_, err := merkle.InclusionProofs(ctx, h.Log, indexes, b)
		return err
	}
	tests := []op{
		{"Leaves", 3, 2, leaves},
		{"Leaves", 0, size + 1, leaves},
		{"Leaves", size + 1, size + 1, leaves},
		{"Leaves", size, size + 1, leaves},
		{"Leaves", maxU, maxU, leaves},
		{"Leaves", maxU, 0, leaves},
		{"Leaves", 0, maxU, leaves},
		{"InclusionProof", 0, 0, incl},
		{"InclusionProof", size, size, incl},
		{"InclusionProof", 3, 2, incl},
		{"InclusionProof", 0, size + 1, incl},
		{"InclusionProof", size, size + 1, incl},
		{"InclusionProof", maxU, maxU, incl},
		{"InclusionProof", maxU - 1, maxU, incl},
		{"InclusionProof", 0, maxU, incl},
		{"ConsistencyProof", 3, 2, cons},
		{"ConsistencyProof", size, 0, cons},
		{"ConsistencyProof", 0, size + 1, cons},
		{"ConsistencyProof", size, size + 1, cons},
		{"ConsistencyProof", size + 1, size + 1, cons},
		{"ConsistencyProof", maxU, maxU, cons},
		{"ConsistencyProof", 1, maxU, cons},
		{"ConsistencyProof", maxU, 1, cons},
		{"InclusionProofs", size, size, multi},
		{"InclusionProofs", 0, size + 1, multi},
		{"InclusionProofs", maxU, maxU, multi},
		{"InclusionProofs", 1, maxU, multi},
	}
	for _, tc := range tests {
		what := fmt.Sprintf("%s(%d, %d) on a log of size %d", tc.name, tc.a, tc.b, size)
		err := call(what, func() error { return tc.call(tc.a, tc.b) })
		if !errors.Is(err, merkle.ErrOutOfRange) {
			return fmt.Errorf("%s = %v, want an error matching merkle.ErrOutOfRange", what, err)
		}
		var re *merkle.RangeError
		if !errors.As(err, &re) {
			return fmt.Errorf("%s = %v (%T), want a *merkle.RangeError", what, err, err)
		}
		if re.A != tc.a || re.B != tc.b || re.TreeSize != size || re.Op == "" {
			return fmt.Errorf("%s returned RangeError{Op: %q, A: %d, B: %d, TreeSize: %d}, want the arguments as given, a non-empty Op and TreeSize %d", what, re.Op, re.A, re.B, re.TreeSize, size)
		}
	}
	// The boundaries themselves are in range.
	if err := leavesEqual(ctx, h, ref, size, size); err != nil {
		return err
	}
	if err := inclusionOK(ctx, h, ref, size-1, size); err != nil {
		return err
	}
	for _, pair := range [][2]uint64{{0, size}, {size, size}, {0, 0}} {
		if err := consistencyOK(ctx, h, ref, pair[0], pair[1]); err != nil {
			return err
		}
	}
	return nil
}

func checkConcurrent(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	const writers, perWriter = 32, 50
	ref := &refTree{}
	// A few leaves first, so that there is an earlier checkpoint to extend.
	for i := range 3 {
		if err := appendNew(ctx, h, ref, [][]byte{testLeaf("concurrent-first", i)}); err != nil {
			return err
		}
	}
	early, err := checkpoint(ctx, h, ref)
	if err != nil {
		return err
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		at   = make(map[uint64][]byte) // index -> leaf appended there
		cps  []merkle.Checkpoint
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	dup := testLeaf("concurrent-dup", 0)
	dupIdx := make([]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < perWriter; {
				// Alternate single appends and batches of 3.
				n := 1 + 2*(i%2)
				n = min(n, perWriter-i)
				batch := make([][]byte, n)
				for j := range batch {
					batch[j] = testLeaf(fmt.Sprintf("concurrent-%d", w), i+j)
				}
				if i == perWriter/2 {
					batch = append(batch, dup)
				}
				idx, err := h.Log.Append(ctx, batch)
				if err != nil {
					fail(fmt.Errorf("writer %d: Append: %w", w, err))
					return
				}
				if len(idx) != len(batch) {
					fail(fmt.Errorf("writer %d: Append of %d leaves returned %d indices", w, len(batch), len(idx)))
					return
				}
				if i == perWriter/2 {
					dupIdx[w] = idx[len(idx)-1]
					batch, idx = batch[:n], idx[:n]
				}
				mu.Lock()
				for j, x := range idx {
					if prev, ok := at[x]; ok {
						errs = append(errs, fmt.Errorf("index %d returned for both %q and %q", x, prev, batch[j]))
					}
					at[x] = batch[j]
				}
				mu.Unlock()
				// Every leaf whose Append returned is covered by the next checkpoint.
				cp, err := h.Log.Checkpoint(ctx)
				if err != nil {
					fail(fmt.Errorf("writer %d: Checkpoint: %w", w, err))
					return
				}
				for _, x := range idx {
					if x >= cp.Size {
						fail(fmt.Errorf("writer %d: Append returned index %d, but a later Checkpoint has size %d", w, x, cp.Size))
						return
					}
				}
				if i%10 == 0 {
					mu.Lock()
					cps = append(cps, cp)
					mu.Unlock()
				}
				i += n
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for w := range writers {
		if dupIdx[w] != dupIdx[0] {
			return fmt.Errorf("the same leaf appended concurrently by writers 0 and %d got indices %d and %d", w, dupIdx[0], dupIdx[w])
		}
	}
	total := uint64(3 + writers*perWriter + 1) // the first leaves, the writers' leaves, dup
	if len(at) != writers*perWriter {
		return fmt.Errorf("%d distinct indices for %d distinct leaves", len(at), writers*perWriter)
	}
	if _, ok := at[dupIdx[0]]; ok || dupIdx[0] < 3 || dupIdx[0] >= total {
		return fmt.Errorf("the leaf appended by every writer got index %d, which is out of [3, %d) or taken by another leaf", dupIdx[0], total)
	}
	all, err := h.Log.Leaves(ctx, 0, total)
	if err != nil {
		return fmt.Errorf("Leaves(0, %d) after %d distinct leaves were appended: %w", total, total, err)
	}
	for x, leaf := range at {
		if x < 3 || x >= total {
			return fmt.Errorf("index %d out of [3, %d)", x, total)
		}
		if !bytes.Equal(all[x], leaf) {
			return fmt.Errorf("index %d holds %q, but Append returned it for %q", x, all[x], leaf)
		}
	}
	if !bytes.Equal(all[dupIdx[0]], dup) {
		return fmt.Errorf("index %d holds %q, but Append returned it for %q", dupIdx[0], all[dupIdx[0]], dup)
	}
	for _, l := range all[3:] {
		ref.add(l)
	}
	final, err := checkpoint(ctx, h, ref)
	if err != nil {
		return fmt.Errorf("after concurrent appends: %w", err)
	}
	for _, cp := range append(cps, early) {
		if _, err := merkle.ParseCheckpoint(cp.Note, h.Origin, h.Verifier); err != nil {
			return fmt.Errorf("checkpoint taken during concurrent appends: %w", err)
		}
		if cp.Root != ref.root(cp.Size) {
			return fmt.Errorf("checkpoint of size %d taken during concurrent appends has root %v, but the final log's first %d leaves hash to %v", cp.Size, cp.Root, cp.Size, ref.root(cp.Size))
		}
		p, err := consistencyProof(ctx, h, cp.Size, final.Size)
		if err != nil {
			return err
		}
		if err := verifyConsistency(cp.Size, final.Size, cp.Root, final.Root, p); err != nil {
			return fmt.Errorf("checkpoint of size %d taken during concurrent appends is not consistent with the final one of size %d: %w", cp.Size, final.Size, err)
		}
	}
	return nil
}

func checkReopen(t *testing.T, cfg Config) error {
	ctx := t.Context()
	dir := t.TempDir()
	h := open(t, cfg, dir)
	ref := &refTree{}
	const n = 21
	for i := 0; i < n; i += 3 {
		if err := appendNew(ctx, h, ref, [][]byte{testLeaf("reopen", i), testLeaf("reopen", i+1), testLeaf("reopen", i+2)}); err != nil {
			return err
		}
	}
	before, err := checkpoint(ctx, h, ref)
	if err != nil {
		return err
	}
	type pair struct{ a, b uint64 }
	samples := []pair{{0, n}, {n - 1, n}, {7, 13}, {1, 2}, {10, n}}
	inclBefore := make(map[pair][]merkle.Hash)
	consBefore := make(map[pair][]merkle.Hash)
	for _, s := range samples {
		if inclBefore[s], err = inclusionProof(ctx, h, s.a, s.b); err != nil {
			return err
		}
		if consBefore[s], err = consistencyProof(ctx, h, s.a, s.b); err != nil {
			return err
		}
	}
	if err := h.close(); err != nil {
		return fmt.Errorf("close before reopening: %w", err)
	}

	h2 := open(t, cfg, dir)
	after, err := checkpoint(ctx, h2, ref)
	if err != nil {
		return fmt.Errorf("after reopening: %w", err)
	}
	if after.Size != before.Size || after.Root != before.Root {
		return fmt.Errorf("after reopening, checkpoint is (%d, %v); before it was (%d, %v)", after.Size, after.Root, before.Size, before.Root)
	}
	if _, err := merkle.ParseCheckpoint(after.Note, h.Origin, h.Verifier); err != nil {
		return fmt.Errorf("after reopening, the log signs with another key or origin: %w", err)
	}
	for _, s := range samples {
		p, err := inclusionProof(ctx, h2, s.a, s.b)
		if err != nil {
			return fmt.Errorf("after reopening: %w", err)
		}
		if !equalHashes(p, inclBefore[s]) {
			return fmt.Errorf("after reopening, InclusionProof(%d, %d) = %v; before it was %v", s.a, s.b, p, inclBefore[s])
		}
		p, err = consistencyProof(ctx, h2, s.a, s.b)
		if err != nil {
			return fmt.Errorf("after reopening: %w", err)
		}
		if !equalHashes(p, consBefore[s]) {
			return fmt.Errorf("after reopening, ConsistencyProof(%d, %d) = %v; before it was %v", s.a, s.b, p, consBefore[s])
		}
	}
	if err := leavesEqual(ctx, h2, ref, 0, n); err != nil {
		return fmt.Errorf("after reopening: %w", err)
	}
	// Dedup still knows the old leaves; new ones continue at the next index.
	if err := appendLeaves(ctx, h2, [][]byte{testLeaf("reopen", 4), testLeaf("reopen", n), testLeaf("reopen", 0)}, []uint64{4, n, 0}); err != nil {
		return fmt.Errorf("after reopening: %w", err)
	}
	ref.add(testLeaf("reopen", n))
	cp, err := checkpoint(ctx, h2, ref)
	if err != nil {
		return fmt.Errorf("after reopening and appending: %w", err)
	}
	if err := consistencyOK(ctx, h2, ref, before.Size, cp.Size); err != nil {
		return fmt.Errorf("after reopening and appending: %w", err)
	}
	return nil
}

func checkCancelled(t *testing.T, cfg Config) error {
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	if err := appendNew(t.Context(), h, ref, [][]byte{testLeaf("ctx", 0)}); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var idx []uint64
	err := call("Append", func() (err error) { idx, err = h.Log.Append(ctx, [][]byte{testLeaf("ctx", 1)}); return err })
	if !errors.Is(err, context.Canceled) {
		return fmt.Errorf("append with a cancelled context = %v, %v; want an error matching context.Canceled", idx, err)
	}
	if _, err := checkpoint(t.Context(), h, ref); err != nil {
		return fmt.Errorf("after Append with a cancelled context: %w", err)
	}
	// The leaf was not appended: it is new now.
	return appendNew(t.Context(), h, ref, [][]byte{testLeaf("ctx", 1)})
}

func checkClosed(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	ref := &refTree{}
	if err := appendNew(ctx, h, ref, [][]byte{testLeaf("closed", 0), testLeaf("closed", 1)}); err != nil {
		return err
	}
	if err := h.close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	calls := []struct {
		name string
		f    func() error
	}{
		{"Append", func() error { _, err := h.Log.Append(ctx, [][]byte{testLeaf("closed", 2)}); return err }},
		{"Append of a leaf already in the log", func() error { _, err := h.Log.Append(ctx, [][]byte{testLeaf("closed", 0)}); return err }},
		{"Leaves", func() error { _, err := h.Log.Leaves(ctx, 0, 1); return err }},
		{"Checkpoint", func() error { _, err := h.Log.Checkpoint(ctx); return err }},
		{"InclusionProof", func() error { _, err := h.Log.InclusionProof(ctx, 0, 2); return err }},
		{"ConsistencyProof", func() error { _, err := h.Log.ConsistencyProof(ctx, 1, 2); return err }},
	}
	for _, c := range calls {
		if err := call(c.name, c.f); !errors.Is(err, merkle.ErrClosed) {
			return fmt.Errorf("%s after Close = %v, want an error matching merkle.ErrClosed", c.name, err)
		}
	}
	return nil
}

func toTlog(p []merkle.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(p))
	for i, h := range p {
		out[i] = tlog.Hash(h)
	}
	return out
}

func toBytes(p []merkle.Hash) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func equalHashes(a, b []merkle.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func checkTiles(t *testing.T, cfg Config) error {
	ctx := t.Context()
	h := open(t, cfg, t.TempDir())
	tl, ok := h.Log.(merkle.TileLog)
	if !ok {
		t.Skip("the log is not a merkle.TileLog")
	}
	ref := &refTree{}
	const size = 2*merkle.TileWidth + 3
	for i := 0; i < size; i += 100 {
		var batch [][]byte
		for j := i; j < min(i+100, size); j++ {
			batch = append(batch, testLeaf("tiles", j))
		}
		if err := appendNew(ctx, h, ref, batch); err != nil {
			return err
		}
	}
	if _, err := checkpoint(ctx, h, ref); err != nil {
		return err
	}
	type tile struct {
		level int // -1: entry bundle
		index uint64
		width int
	}
	name := func(c tile) string {
		if c.level < 0 {
			return fmt.Sprintf("EntryBundle(%d, %d)", c.index, c.width)
		}
		return fmt.Sprintf("Tile(%d, %d, %d)", c.level, c.index, c.width)
	}
	get := func(c tile) (b []byte, err error) {
		err = call(name(c), func() error {
			if c.level < 0 {
				b, err = tl.EntryBundle(ctx, c.index, c.width)
			} else {
				b, err = tl.Tile(ctx, uint8(c.level), c.index, c.width)
			}
			return err
		})
		return b, err
	}
	for _, c := range []tile{
		{0, 0, 256}, {0, 1, 256}, {0, 2, 3}, {0, 0, 5}, {0, 2, 1}, {1, 0, 2}, {1, 0, 1},
		{-1, 0, 256}, {-1, 1, 256}, {-1, 2, 3}, {-1, 2, 1}, {-1, 1, 7},
	} {
		got, err := get(c)
		if err != nil {
			return fmt.Errorf("%s at size %d: %w", name(c), size, err)
		}
		var want []byte
		if c.level < 0 {
			for _, leaf := range ref.leaves[c.index*merkle.TileWidth : c.index*merkle.TileWidth+uint64(c.width)] {
				want = append(want, byte(len(leaf)>>8), byte(len(leaf)))
				want = append(want, leaf...)
			}
		} else if want, err = tlog.ReadTileData(tlog.Tile{H: merkle.TileHeight, L: c.level, N: int64(c.index), W: c.width}, ref); err != nil {
			return fmt.Errorf("reference %s: %v", name(c), err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s at size %d returned %d bytes %x, want %d bytes %x", name(c), size, len(got), got, len(want), want)
		}
	}
	for _, c := range []tile{
		{0, 2, 4}, {0, 3, 1}, {1, 0, 3}, {1, 1, 1}, {2, 0, 1}, {0, 0, 0}, {0, 0, 257}, {0, math.MaxUint64, 1}, {20, 0, 1},
		{-1, 2, 4}, {-1, 3, 1}, {-1, 0, 0}, {-1, 0, 257}, {-1, math.MaxUint64, 1},
	} {
		_, err := get(c)
		var re *merkle.RangeError
		if !errors.As(err, &re) {
			return fmt.Errorf("%s at size %d returned %v, want a *merkle.RangeError", name(c), size, err)
		}
	}
	return nil
}
