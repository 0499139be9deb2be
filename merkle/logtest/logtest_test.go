package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A bug is a deliberate fault of memLog, to show that the suite catches it.
type bug int

const (
	noBug                  bug = iota
	bugInclusion               // one inclusion proof has a flipped bit
	bugConsistency             // consistency proofs for new-old == 7 are for new-1
	bugRoot                    // the checkpoint of size 100 signs the root of size 99
	bugUncheckedSize           // InclusionProof trusts size: a wrong proof for size > tree size
	bugNoDedup                 // identical leaves are appended again
	bugPartialBatch            // a batch with a bad leaf appends the good ones before it
	bugAcceptsEmpty            // an empty leaf is appended
	bugRejectsMax              // a leaf of exactly MaxLeafSize is refused
	bugPanicsOutOfRange        // InclusionProof with index >= size panics
	bugPlainRangeError         // range errors are not *merkle.RangeError
	bugIgnoresContext          // Append ignores a cancelled context
	bugStillOpen               // methods work after Close
	bugForgetsOnReopen         // reopening starts an empty log
	bugNewKeyOnReopen          // reopening signs with a new key
	bugAliasesLeaves           // Append keeps the caller's slices, Leaves returns its own
	bugStaleCheckpoint         // Checkpoint lags behind Append
	bugDedupBySize             // dedup keyed by leaf length, not content
	bugWrongOrigin             // checkpoints carry another origin
	bugEmptyConsistencyAll     // ConsistencyProof(0, n) returns a non-empty proof
)

// memStore holds the state of every memLog "directory" of one test, so that
// a log can be closed and reopened.
type memStore struct {
	bug bug

	mu   sync.Mutex
	dirs map[string]*memState
}

// memState is the content of one log.
type memState struct {
	mu       sync.Mutex
	leaves   [][]byte
	stored   []tlog.Hash
	index    map[string]uint64
	signer   note.Signer
	verifier note.Verifier
	lastCP   merkle.Checkpoint
}

// ReadHashes implements tlog.HashReader; the caller holds st.mu.
func (st *memState) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = st.stored[x]
	}
	return out, nil
}

// memLog is a deliberately small in-memory merkle.Log, the reference the
// suite is checked against, with optional deliberate bugs.
type memLog struct {
	st     *memState
	bug    bug
	origin string
	closed atomic.Bool
}

var _ merkle.Log = (*memLog)(nil)

const memOrigin = "logtest.example/memlog"

func newKey(t *testing.T) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(memOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// config returns a Config opening memLogs with the given bug.
func config(b bug) Config {
	store := &memStore{bug: b, dirs: make(map[string]*memState)}
	return Config{Open: store.open, Reopenable: true}
}

func (s *memStore) open(t *testing.T, dir string) Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.dirs[dir]
	if !ok || s.bug == bugForgetsOnReopen {
		st = &memState{index: make(map[string]uint64)}
		st.signer, st.verifier = newKey(t)
		s.dirs[dir] = st
	} else if s.bug == bugNewKeyOnReopen {
		st.signer, st.verifier = newKey(t)
	}
	l := &memLog{st: st, bug: s.bug, origin: memOrigin}
	if s.bug == bugWrongOrigin {
		l.origin = "other.example/memlog"
	}
	return Instance{Log: l, Verifier: st.verifier, Origin: memOrigin, Close: l.close}
}

func (l *memLog) close() error {
	if l.bug != bugStillOpen {
		l.closed.Store(true)
	}
	return nil
}

func (l *memLog) begin(ctx context.Context) error {
	if l.closed.Load() {
		return merkle.ErrClosed
	}
	return ctx.Err()
}

func (l *memLog) rangeError(op string, a, b uint64) error {
	if l.bug == bugPlainRangeError {
		return fmt.Errorf("%s (%d, %d) out of range", op, a, b)
	}
	return &merkle.RangeError{Op: op, A: a, B: b, TreeSize: uint64(len(l.st.leaves))}
}

func (l *memLog) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	if l.bug != bugIgnoresContext {
		if err := l.begin(ctx); err != nil {
			return nil, err
		}
	} else if l.closed.Load() {
		return nil, merkle.ErrClosed
	}
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, leaf := range leaves {
		err := merkle.CheckLeaf(leaf)
		switch {
		case l.bug == bugAcceptsEmpty && len(leaf) == 0:
			err = nil
		case l.bug == bugRejectsMax && len(leaf) == merkle.MaxLeafSize:
			err = merkle.ErrInvalidLeaf
		}
		if err != nil && l.bug != bugPartialBatch {
			return nil, err
		}
	}
	out := make([]uint64, len(leaves))
	for i, leaf := range leaves {
		if l.bug == bugPartialBatch {
			if err := merkle.CheckLeaf(leaf); err != nil {
				return nil, err
			}
		}
		key := string(leaf)
		if l.bug == bugDedupBySize {
			key = fmt.Sprint(len(leaf))
		}
		if x, ok := st.index[key]; ok && l.bug != bugNoDedup {
			out[i] = x
			continue
		}
		n := uint64(len(st.leaves))
		hs, err := tlog.StoredHashes(int64(n), leaf, st)
		if err != nil {
			return nil, err
		}
		st.stored = append(st.stored, hs...)
		if l.bug == bugAliasesLeaves {
			st.leaves = append(st.leaves, leaf)
		} else {
			st.leaves = append(st.leaves, bytes.Clone(leaf))
		}
		st.index[key] = n
		out[i] = n
	}
	return out, nil
}

func (l *memLog) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	if err := l.begin(ctx); err != nil {
		return nil, err
	}
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if start > end || end > uint64(len(st.leaves)) {
		return nil, l.rangeError("leaves", start, end)
	}
	out := make([][]byte, 0, end-start)
	for _, leaf := range st.leaves[start:end] {
		if l.bug != bugAliasesLeaves {
			leaf = bytes.Clone(leaf)
		}
		out = append(out, leaf)
	}
	return out, nil
}

func (l *memLog) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	if err := l.begin(ctx); err != nil {
		return merkle.Checkpoint{}, err
	}
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := uint64(len(st.leaves))
	if l.bug == bugStaleCheckpoint && n > 0 && n%5 != 0 && st.lastCP.Note != nil {
		return st.lastCP, nil
	}
	root := merkle.EmptyRoot()
	if n > 0 {
		rootSize := n
		if l.bug == bugRoot && n == 100 {
			rootSize--
		}
		h, err := tlog.TreeHash(int64(rootSize), st)
		if err != nil {
			return merkle.Checkpoint{}, err
		}
		root = merkle.Hash(h)
	}
	cp, err := merkle.SignCheckpoint(st.signer, l.origin, n, root)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	st.lastCP = cp
	return cp, nil
}

func (l *memLog) InclusionProof(ctx context.Context, index, size uint64) ([]merkle.Hash, error) {
	if err := l.begin(ctx); err != nil {
		return nil, err
	}
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	n := uint64(len(st.leaves))
	switch l.bug {
	case bugPanicsOutOfRange:
		_ = st.leaves[index] // no check of index against size
		if size > n {
			return nil, l.rangeError("inclusion proof", index, size)
		}
	case bugUncheckedSize:
		if index >= size {
			return nil, l.rangeError("inclusion proof", index, size)
		}
		size = min(size, n)
	default:
		if index >= size || size > n {
			return nil, l.rangeError("inclusion proof", index, size)
		}
	}
	p, err := tlog.ProveRecord(int64(size), int64(index), st)
	if err != nil {
		return nil, err
	}
	out := fromTlog(p)
	if l.bug == bugInclusion && index == 5 && size == 37 {
		out[len(out)-1][3] ^= 0x20
	}
	return out, nil
}

func (l *memLog) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]merkle.Hash, error) {
	if err := l.begin(ctx); err != nil {
		return nil, err
	}
	st := l.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if oldSize > newSize || newSize > uint64(len(st.leaves)) {
		return nil, l.rangeError("consistency proof", oldSize, newSize)
	}
	if l.bug == bugEmptyConsistencyAll && oldSize == 0 && newSize > 0 {
		return []merkle.Hash{merkle.EmptyRoot()}, nil
	}
	if oldSize == 0 || oldSize == newSize {
		return nil, nil
	}
	if l.bug == bugConsistency && newSize-oldSize == 7 {
		newSize--
	}
	p, err := tlog.ProveTree(int64(newSize), int64(oldSize), st)
	if err != nil {
		return nil, err
	}
	return fromTlog(p), nil
}

func fromTlog(p []tlog.Hash) []merkle.Hash {
	out := make([]merkle.Hash, len(p))
	for i, h := range p {
		out[i] = merkle.Hash(h)
	}
	return out
}

// TestMemLog runs the suite against the reference log: it must pass.
func TestMemLog(t *testing.T) {
	Run(t, config(noBug))
}

// TestSuiteCatchesBugs runs each check against a log with a deliberate bug
// and requires the check to report it.
func TestSuiteCatchesBugs(t *testing.T) {
	tests := []struct {
		bug   bug
		check string
	}{
		{bugInclusion, "Proofs"},
		{bugConsistency, "Proofs"},
		{bugConsistency, "TamperedProofs"},
		{bugRoot, "Proofs"},
		{bugUncheckedSize, "OutOfRange"},
		{bugNoDedup, "Dedup"},
		{bugNoDedup, "Reopen"},
		{bugPartialBatch, "InvalidLeaves"},
		{bugAcceptsEmpty, "InvalidLeaves"},
		{bugRejectsMax, "InvalidLeaves"},
		{bugPanicsOutOfRange, "OutOfRange"},
		{bugPlainRangeError, "OutOfRange"},
		{bugIgnoresContext, "CancelledContext"},
		{bugStillOpen, "Closed"},
		{bugForgetsOnReopen, "Reopen"},
		{bugNewKeyOnReopen, "Reopen"},
		{bugAliasesLeaves, "AppendAndRead"},
		{bugStaleCheckpoint, "AppendAndRead"},
		{bugStaleCheckpoint, "Concurrent"},
		{bugDedupBySize, "Dedup"},
		{bugDedupBySize, "Concurrent"},
		{bugWrongOrigin, "Empty"},
		{bugEmptyConsistencyAll, "Proofs"},
	}
	byName := make(map[string]check)
	for _, c := range checks() {
		byName[c.name] = c
	}
	for _, tc := range tests {
		c, ok := byName[tc.check]
		if !ok {
			t.Fatalf("no check named %q", tc.check)
		}
		t.Run(fmt.Sprintf("bug%d/%s", tc.bug, tc.check), func(t *testing.T) {
			err := c.run(t, config(tc.bug))
			if err == nil {
				t.Fatalf("check %s passed a log with bug %d", tc.check, tc.bug)
			}
			t.Logf("reported: %v", err)
		})
	}
}

// TestTamperedProofsSmall shows the proof checks work on small trees too,
// and that the exhaustive check is a function of its size limit.
func TestProofsSmall(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 8, 9} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			if err := checkProofsUpTo(t, config(noBug), n); err != nil {
				t.Fatal(err)
			}
		})
	}
	if err := checkProofsUpTo(t, config(bugInclusion), 40); err == nil {
		t.Error("a wrong inclusion proof in a tree of 37 leaves was not reported")
	}
}

// TestCallRecovers checks that a panicking method becomes an error.
func TestCallRecovers(t *testing.T) {
	err := call("X", func() error { panic("boom") })
	if err == nil {
		t.Fatal("call swallowed a panic without an error")
	}
	sentinel := errors.New("sentinel")
	if err := call("X", func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("call = %v, want the function's error", err)
	}
}
