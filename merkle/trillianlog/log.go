package trillianlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var _ merkle.Log = (*Log)(nil)

// Config carries everything a Log needs.
// The defaults of Config's poll intervals.
const (
	DefaultPollInterval    = 25 * time.Millisecond
	DefaultMaxPollInterval = 500 * time.Millisecond
)

type Config struct {
	// Client talks to the Trillian log server. The caller owns the
	// connection behind it and closes it after closing the Log.
	Client trillian.TrillianLogClient
	// TreeID is the Trillian tree: a LOG tree (not PREORDERED_LOG) with
	// the RFC6962_SHA256 hash strategy, already initialized (createtree
	// does both).
	TreeID int64
	// Origin is the checkpoint origin line, for example
	// "provtrail.example/log". The Signer's name must equal it.
	Origin string
	// Signer signs checkpoints: the log key. Every replica of one log
	// must hold the same key.
	Signer note.Signer
	// PollInterval is how often the latest root is polled while an Append
	// waits for its leaves to be integrated; zero means
	// DefaultPollInterval. Set it to about half the signer's
	// --sequencer_interval.
	PollInterval time.Duration
	// MaxPollInterval bounds the backoff while the tree does not grow;
	// zero means DefaultMaxPollInterval.
	MaxPollInterval time.Duration
	// ProofCacheNodes bounds the subtree hashes kept from Trillian's
	// proofs to build later proofs without a call (see [Log.InclusionProof]).
	// Default 65536, about 6 MiB; negative: keep none.
	ProofCacheNodes int
	// Logger receives failed polls. Default: discard.
	Logger *slog.Logger
}

// A Log is a Merkle transparency log kept by a Trillian log server.
type Log struct {
	client  trillian.TrillianLogClient
	treeID  int64
	origin  string
	signer  note.Signer
	log     *slog.Logger
	poll    time.Duration
	maxPoll time.Duration
	nodes   *nodeCache

	// ctx is cancelled by Close; it bounds the watcher's calls.
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}

	// fetching holds a token while a root is fetched: one at a time.
	fetching chan struct{}

	mu      sync.Mutex
	closed  bool
	root    root               // the largest verified root seen
	fetches uint64             // root fetches started
	fetched uint64             // the number of the last one that set root
	signed  *merkle.Checkpoint // latest signed checkpoint, for root.size
	scanned uint64             // leaves below scanned were matched against waiters
	waiting map[merkle.Hash]*waiter
	wake    chan struct{} // the watcher sleeps on it while nothing waits
}

// root is a Trillian log root reduced to what a checkpoint holds.
type root struct {
	size uint64
	hash merkle.Hash
}

// maxRecvBytes bounds a response: a range of leavesPerCall leaves of
// merkle.MaxLeafSize bytes, with room for the framing.
const (
	leavesPerCall = 256
	maxRecvBytes  = leavesPerCall*(merkle.MaxLeafSize+256) + 1<<20
)

// Open checks that the tree has a root and starts the Log's watcher. Close
// it before closing the connection.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("trillianlog: no Trillian client")
	case cfg.TreeID == 0:
		return nil, errors.New("trillianlog: no tree ID")
	case cfg.Signer == nil:
		return nil, errors.New("trillianlog: no log signer")
	case cfg.Origin == "":
		return nil, errors.New("trillianlog: no origin")
	case cfg.Signer.Name() != cfg.Origin:
		return nil, fmt.Errorf("trillianlog: signer key is named %q, want the origin %q", cfg.Signer.Name(), cfg.Origin)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollInterval < cfg.PollInterval {
		cfg.MaxPollInterval = max(cfg.PollInterval, DefaultMaxPollInterval)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProofCacheNodes == 0 {
		cfg.ProofCacheNodes = 1 << 16
	}
	l := &Log{
		client:  cfg.Client,
		treeID:  cfg.TreeID,
		origin:  cfg.Origin,
		signer:  cfg.Signer,
		log:     cfg.Logger.With("tree", cfg.TreeID),
		poll:    cfg.PollInterval,
		maxPoll: cfg.MaxPollInterval,
		nodes:   newNodeCache(cfg.ProofCacheNodes),
		stopped: make(chan struct{}),
		waiting: make(map[merkle.Hash]*waiter),
		wake:    make(chan struct{}, 1),
		root:    root{size: 0, hash: merkle.EmptyRoot()},

		fetching: make(chan struct{}, 1),
	}
	r, err := l.latestRoot(ctx)
	if err != nil {
		return nil, fmt.Errorf("trillianlog: open tree %d: %w", cfg.TreeID, err)
	}
	l.scanned = r.size
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.watch()
	return l, nil
}

// Close stops the watcher. Append calls still waiting return ErrClosed;
// their leaves may still be integrated by Trillian.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for h, w := range l.waiting {
		w.finish(0, merkle.ErrClosed)
		delete(l.waiting, h)
	}
	l.mu.Unlock()
	l.cancel()
	<-l.stopped
	return nil
}

func (l *Log) checkOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return merkle.ErrClosed
	}
	return nil
}

// latestRoot returns Trillian's latest root, fetched after the call began,
// once it is checked to extend the largest root seen so far (or that one,
// if Trillian answers with a smaller root).
//
// Fetches run one at a time, so that each new root is checked against the
// one before it: two roots each consistent with an older one need not be
// consistent with each other. Callers that arrive while a fetch runs share
// the next one.
func (l *Log) latestRoot(ctx context.Context) (root, error) {
	l.mu.Lock()
	arrived := l.fetches
	l.mu.Unlock()
	select {
	case l.fetching <- struct{}{}:
	case <-ctx.Done():
		return root{}, fmt.Errorf("get latest root: %w", ctx.Err())
	}
	defer func() { <-l.fetching }()
	l.mu.Lock()
	if l.fetched > arrived {
		// A fetch that started after this call arrived has finished.
		defer l.mu.Unlock()
		return l.root, nil
	}
	l.fetches++
	seq, prev := l.fetches, l.root
	l.mu.Unlock()

	r, err := l.fetchRoot(ctx, prev)
	if err != nil {
		return root{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.root, l.fetched = r, seq
	return r, nil
}

// fetchRoot fetches Trillian's latest root with a consistency proof from
// prev, and returns it if it extends prev, or prev if it is smaller.
func (l *Log) fetchRoot(ctx context.Context, prev root) (root, error) {
	resp, err := l.client.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{
		LogId:         l.treeID,
		FirstTreeSize: int64(prev.size),
	})
	if err != nil {
		return root{}, l.rpcError(ctx, "get latest root", err)
	}
	r, err := parseRoot(resp.GetSignedLogRoot())
	if err != nil {
		return root{}, err
	}
	switch {
	case r.size < prev.size:
		// A lagging replica of the database, or a stale answer: keep the
		// larger root. Checkpoints never shrink.
		return prev, nil
	case r.size == prev.size:
		if r.hash != prev.hash {
			return root{}, fmt.Errorf("trillian returned root %v for size %d, earlier %v: the log forked", r.hash, r.size, prev.hash)
		}
	case prev.size > 0:
		p, err := hashes(resp.GetProof().GetHashes())
		if err != nil {
			return root{}, fmt.Errorf("consistency proof from size %d to %d: %w", prev.size, r.size, err)
		}
		if err := merkle.VerifyConsistency(prev.size, r.size, prev.hash, r.hash, p); err != nil {
			return root{}, fmt.Errorf("trillian's root of size %d does not extend the one of size %d: %w", r.size, prev.size, err)
		}
	}
	return r, nil
}

// parseRoot checks a Trillian SignedLogRoot: a LogRootV1 with a SHA-256
// root hash.
func parseRoot(slr *trillian.SignedLogRoot) (root, error) {
	if slr == nil {
		return root{}, errors.New("trillian returned no log root")
	}
	var lr types.LogRootV1
	if err := lr.UnmarshalBinary(slr.GetLogRoot()); err != nil {
		return root{}, fmt.Errorf("parse trillian log root: %w", err)
	}
	if len(lr.RootHash) != merkle.HashSize {
		return root{}, fmt.Errorf("trillian log root hash has %d bytes, want %d", len(lr.RootHash), merkle.HashSize)
	}
	if lr.TreeSize > math.MaxInt64 {
		return root{}, fmt.Errorf("trillian log root has size %d", lr.TreeSize)
	}
	if lr.TreeSize == 0 && merkle.Hash(lr.RootHash) != merkle.EmptyRoot() {
		return root{}, errors.New("trillian log root of the empty tree has the wrong hash: not an RFC 6962 tree")
	}
	return root{size: lr.TreeSize, hash: merkle.Hash(lr.RootHash)}, nil
}

func hashes(bs [][]byte) ([]merkle.Hash, error) {
	out := make([]merkle.Hash, len(bs))
	for i, b := range bs {
		if len(b) != merkle.HashSize {
			return nil, fmt.Errorf("hash %d has %d bytes, want %d", i, len(b), merkle.HashSize)
		}
		out[i] = merkle.Hash(b)
	}
	return out, nil
}

// rpcError wraps the error of a Trillian call. A call cut short by the
// caller's context returns the context's error, so that errors.Is finds
// context.Canceled.
func (l *Log) rpcError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	if l.checkOpen() != nil {
		return fmt.Errorf("%s: %w", what, merkle.ErrClosed)
	}
	return fmt.Errorf("%s: trillian: %w", what, err)
}

// size returns the size of the latest root, asking Trillian only when the
// largest root seen so far is smaller than need.
func (l *Log) size(ctx context.Context, need uint64) (uint64, error) {
	l.mu.Lock()
	closed, known := l.closed, l.root.size
	l.mu.Unlock()
	if closed {
		return 0, merkle.ErrClosed
	}
	if need <= known {
		return known, nil
	}
	r, err := l.latestRoot(ctx)
	if err != nil {
		return 0, err
	}
	return r.size, nil
}

// Checkpoint returns a checkpoint over Trillian's latest root, signed with
// the log key.
func (l *Log) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	if err := l.checkOpen(); err != nil {
		return merkle.Checkpoint{}, err
	}
	r, err := l.latestRoot(ctx)
	if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signed != nil && l.signed.Size >= r.size {
		return *l.signed, nil
	}
	cp, err := merkle.SignCheckpoint(l.signer, l.origin, r.size, r.hash)
	if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	l.signed = &cp
	return cp, nil
}

// Leaves returns the leaves [start, end), read with GetLeavesByRange.
func (l *Log) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	size, err := l.size(ctx, end)
	if err != nil {
		return nil, fmt.Errorf("leaves: %w", err)
	}
	if start > end || end > size {
		return nil, &merkle.RangeError{Op: "leaves", A: start, B: end, TreeSize: size}
	}
	out := make([][]byte, 0, end-start)
	for next := start; next < end; {
		leaves, err := l.leafRange(ctx, next, end)
		if err != nil {
			if isRangeCode(err) {
				return nil, &merkle.RangeError{Op: "leaves", A: start, B: end, TreeSize: size}
			}
			return nil, fmt.Errorf("leaves [%d, %d): %w", start, end, err)
		}
		for _, lf := range leaves {
			out = append(out, lf.GetLeafValue())
		}
		next += uint64(len(leaves))
	}
	return out, nil
}

// leafRange reads up to leavesPerCall leaves from start, stopping before
// end, and checks each: its index, and that its value hashes to its leaf
// hash. It returns at least one leaf.
func (l *Log) leafRange(ctx context.Context, start, end uint64) ([]*trillian.LogLeaf, error) {
	resp, err := l.client.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{
		LogId:      l.treeID,
		StartIndex: int64(start),
		Count:      int64(min(end-start, leavesPerCall)),
	}, grpc.MaxCallRecvMsgSize(maxRecvBytes))
	if err != nil {
		return nil, l.rpcError(ctx, "get leaves", err)
	}
	leaves := resp.GetLeaves()
	if len(leaves) == 0 || uint64(len(leaves)) > end-start {
		return nil, fmt.Errorf("trillian returned %d leaves for [%d, %d)", len(leaves), start, start+min(end-start, leavesPerCall))
	}
	for i, lf := range leaves {
		if want := start + uint64(i); lf.GetLeafIndex() != int64(want) {
			return nil, fmt.Errorf("trillian returned leaf %d in place of leaf %d", lf.GetLeafIndex(), want)
		}
		if h := merkle.LeafHash(lf.GetLeafValue()); string(h[:]) != string(lf.GetMerkleLeafHash()) {
			return nil, fmt.Errorf("trillian returned leaf %d whose value does not hash to its leaf hash", lf.GetLeafIndex())
		}
	}
	return leaves, nil
}

// InclusionProof returns Trillian's inclusion proof of leaf index in the
// tree of the given size. Hashes of complete subtrees from earlier proofs
// are kept (up to Config.ProofCacheNodes), and a proof made only of known
// ones is built without asking Trillian: the same bytes Trillian would
// return.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([]merkle.Hash, error) {
	cur, err := l.size(ctx, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof: %w", err)
	}
	if index >= size || size > cur {
		return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: cur}
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("inclusion proof (%d, %d): %w", index, size, err)
	}
	if p, ok := l.nodes.proof(nodes); ok {
		return p, nil
	}
	resp, err := l.client.GetInclusionProof(ctx, &trillian.GetInclusionProofRequest{
		LogId:     l.treeID,
		LeafIndex: int64(index),
		TreeSize:  int64(size),
	})
	if err != nil {
		if isRangeCode(err) {
			return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: cur}
		}
		return nil, fmt.Errorf("inclusion proof (%d, %d): %w", index, size, l.rpcError(ctx, "get inclusion proof", err))
	}
	if resp.GetProof() == nil {
		// Trillian answers a size beyond the root it read with no proof.
		return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: cur}
	}
	p, err := proofHashes(nodes, resp.GetProof())
	if err != nil {
		return nil, fmt.Errorf("inclusion proof (%d, %d): %w", index, size, err)
	}
	l.nodes.learn(nodes, p)
	return p, nil
}

// ConsistencyProof returns Trillian's consistency proof between the trees
// of oldSize and newSize, or builds it from known subtree hashes as
// InclusionProof does.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]merkle.Hash, error) {
	cur, err := l.size(ctx, newSize)
	if err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	if oldSize > newSize || newSize > cur {
		return nil, &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: cur}
	}
	if oldSize == 0 || oldSize == newSize {
		return []merkle.Hash{}, nil
	}
	nodes, err := proof.Consistency(oldSize, newSize)
	if err != nil {
		return nil, fmt.Errorf("consistency proof (%d, %d): %w", oldSize, newSize, err)
	}
	if p, ok := l.nodes.proof(nodes); ok {
		return p, nil
	}
	resp, err := l.client.GetConsistencyProof(ctx, &trillian.GetConsistencyProofRequest{
		LogId:          l.treeID,
		FirstTreeSize:  int64(oldSize),
		SecondTreeSize: int64(newSize),
	})
	if err != nil {
		if isRangeCode(err) {
			return nil, &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: cur}
		}
		return nil, fmt.Errorf("consistency proof (%d, %d): %w", oldSize, newSize, l.rpcError(ctx, "get consistency proof", err))
	}
	if resp.GetProof() == nil {
		return nil, &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: cur}
	}
	p, err := proofHashes(nodes, resp.GetProof())
	if err != nil {
		return nil, fmt.Errorf("consistency proof (%d, %d): %w", oldSize, newSize, err)
	}
	l.nodes.learn(nodes, p)
	return p, nil
}

// proofHashes converts Trillian's proof, checking it has the length the
// proof's shape gives.
func proofHashes(nodes proof.Nodes, p *trillian.Proof) ([]merkle.Hash, error) {
	hs, err := hashes(p.GetHashes())
	if err != nil {
		return nil, fmt.Errorf("trillian's proof: %w", err)
	}
	if want := len(spans(nodes)); len(hs) != want {
		return nil, fmt.Errorf("trillian's proof has %d hashes, want %d", len(hs), want)
	}
	return hs, nil
}

// isRangeCode reports whether a Trillian error says that what was asked
// for is not in the tree (yet).
func isRangeCode(err error) bool {
	switch status.Code(err) {
	case codes.OutOfRange, codes.NotFound:
		return true
	}
	return false
}
