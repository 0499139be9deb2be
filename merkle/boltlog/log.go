package boltlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

var (
	_ merkle.ProvingLog  = (*Log)(nil)
	_ merkle.MultiProver = (*Log)(nil)
)

// Config carries everything a Log needs.
type Config struct {
	// DB is the open bbolt database the log lives in. The caller owns it
	// and closes it after closing the Log.
	DB *bbolt.DB
	// Origin is the checkpoint origin line, for example
	// "provtrail.example/log". The Signer's name must equal it.
	Origin string
	// Signer signs checkpoints: the log key.
	Signer note.Signer
	// MaxBatch bounds the leaves written in one transaction when several
	// Append calls are coalesced (a single larger call is never split).
	// Default 4096.
	MaxBatch int
	// MaxWait bounds how long the committer lingers for more appends
	// before it commits a batch smaller than MaxBatch, when appends are
	// concurrent: it lingers only if the previous batch coalesced several
	// Append calls, and only while appends keep arriving (it stops at the
	// first gap of MaxGap with none). A lone appender never waits. Larger
	// batches spend fewer commits, and so less CPU and fewer fsyncs, on the
	// same leaves. Default 0: commit at once with whatever is waiting;
	// appends that arrive during a commit form the next batch.
	MaxWait time.Duration
	// MaxGap is the pause in arrivals that ends a linger. Default
	// MaxWait/4. Timers are only as fine as the system's: where its clock
	// is coarse, as on some virtual machines, a gap lasts at least one of
	// its ticks, however short it is asked to be.
	MaxGap time.Duration
	// Logger receives errors of failed commits. Default: discard.
	Logger *slog.Logger

	// mergeInCommit bounds the entries of a merge of dedup runs done
	// inside a commit; larger ones are done in steps of mergeStep chunks
	// between commits. Tests set them small; the defaults are
	// defaultMergeInCommit and defaultMergeStep.
	mergeInCommit uint64
	mergeStep     int
}

// A merge of dedup runs up to defaultMergeInCommit entries is done in the
// commit that makes it due: most merges are small, and cost no commit of
// their own. Larger ones are done in transactions of defaultMergeStep
// chunks, between commits, so that what a transaction holds in memory
// until it commits does not grow with the log.
const (
	defaultMergeInCommit = 64 * runLeaves
	defaultMergeStep     = 256
)

// A Log is a Merkle transparency log stored in a bbolt database.
type Log struct {
	db     *bbolt.DB
	origin string
	signer note.Signer
	log    *slog.Logger

	maxBatch int
	maxWait  time.Duration
	maxGap   time.Duration

	mergeInCommit uint64
	mergeStep     int

	// closeMu guards closed and sends on queue, so Close never strands a
	// request.
	closeMu sync.RWMutex
	closed  bool
	queue   chan *request
	stop    chan struct{}
	stopped chan struct{}

	st    *state // owned by the committer goroutine, as are:
	merge *merge // a merge of dedup runs under way
	// mergeFailed stops merges until the next commit succeeds.
	mergeFailed bool
	commits     atomic.Uint64 // transactions committed, for benchmarks
	misses      atomic.Uint64 // AppendProved proofs read from storage, for tests

	pubMu   sync.Mutex
	pubSize uint64
	pubRoot merkle.Hash
	signed  *merkle.Checkpoint // latest signed checkpoint, if for pubSize
	last    *commitProof       // of the latest commit, whose tree is pubSize's
}

// A commitProof proves the leaves of one commit in the tree right after
// it. Every node of such a proof is either a node the commit completed or
// a node of the compact range of the tree before it, so nodes holds both;
// the tree's checkpoint is signed once, when first asked for.
type commitProof struct {
	start, size uint64 // the commit added the leaves [start, size)
	root        merkle.Hash
	nodes       *commitNodes

	once sync.Once
	cp   merkle.Checkpoint
	err  error

	// The tree's ephemeral nodes (see proof.Nodes.Ephem) a receipt has
	// needed: the receipts of one commit share a few of them.
	ephemMu sync.Mutex
	ephem   map[compact.NodeID]merkle.Hash
}

func (c *commitProof) checkpoint(l *Log) (merkle.Checkpoint, error) {
	c.once.Do(func() {
		c.cp, c.err = merkle.SignCheckpoint(l.signer, l.origin, c.size, c.root)
	})
	return c.cp, c.err
}

// prove returns the inclusion proof of index in the commit's tree, or
// false if a node is missing (it never should be).
//
// A proof of a leaf right of the tree's last perfect subtree has an
// ephemeral node, hashed from several nodes of the tree's right border
// (several SHA-256 computations), and the receipts of one commit need only
// a few different ones: each is hashed once a commit, with the library's
// Rehash, and then reused.
func (c *commitProof) prove(index uint64) ([]merkle.Hash, bool) {
	nodes, err := proof.Inclusion(index, c.size)
	if err != nil {
		return nil, false
	}
	ephem, begin, end := nodes.Ephem()
	if begin < end {
		c.ephemMu.Lock()
		h, ok := c.ephem[ephem]
		c.ephemMu.Unlock()
		if ok {
			p := make([]merkle.Hash, 0, len(nodes.IDs)-(end-begin)+1)
			for i, id := range nodes.IDs {
				switch {
				case i == begin:
					p = append(p, h)
					continue
				case i > begin && i < end:
					continue
				}
				h, ok := c.nodes.get(id)
				if !ok {
					return nil, false
				}
				p = append(p, h)
			}
			return p, true
		}
	}
	// One buffer for all the hashes: slicing each node's hash would move
	// every one to the heap on its own: one allocation for each hash of
	// every receipt.
	buf := make([]byte, len(nodes.IDs)*merkle.HashSize)
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, ok := c.nodes.get(id)
		if !ok {
			return nil, false
		}
		hashes[i] = buf[i*merkle.HashSize : (i+1)*merkle.HashSize : (i+1)*merkle.HashSize]
		copy(hashes[i], h[:])
	}
	hashes, err = nodes.Rehash(hashes, merkle.HashChildren)
	if err != nil {
		return nil, false
	}
	p := make([]merkle.Hash, len(hashes))
	for i, h := range hashes {
		p[i] = merkle.Hash(h)
	}
	if begin < end {
		c.ephemMu.Lock()
		if c.ephem == nil {
			c.ephem = map[compact.NodeID]merkle.Hash{}
		}
		c.ephem[ephem] = p[begin]
		c.ephemMu.Unlock()
	}
	return p, true
}

// commitNodes are the nodes a commit's proofs are made of, by level: those
// the commit completed, whose indexes at a level run on without a gap, and
// the node of the tree's compact range before the commit, if it has one at
// that level. Finding one is an index into a slice, not a map lookup:
// a receipt looks up one node a level of the tree, and a commit adds
// about two an event, so both are on every event's path.
type commitNodes struct {
	levels []levelNodes
	gap    bool // add saw indexes out of order: get finds nothing
}

type levelNodes struct {
	first     uint64        // the index of done[0]
	done      []merkle.Hash // completed by the commit
	hasPrefix bool
	prefix    uint64 // the compact range's node at this level
	prefixH   merkle.Hash
}

func (c *commitNodes) level(l uint) *levelNodes {
	for uint(len(c.levels)) <= l {
		c.levels = append(c.levels, levelNodes{})
	}
	return &c.levels[l]
}

// addPrefix adds a node of the compact range of the tree before the commit.
func (c *commitNodes) addPrefix(id compact.NodeID, h merkle.Hash) {
	ln := c.level(id.Level)
	ln.hasPrefix, ln.prefix, ln.prefixH = true, id.Index, h
}

// add adds a node the commit completed; a level's nodes come in order.
func (c *commitNodes) add(id compact.NodeID, h merkle.Hash) {
	ln := c.level(id.Level)
	if len(ln.done) == 0 {
		ln.first = id.Index
	} else if id.Index != ln.first+uint64(len(ln.done)) {
		c.gap = true
	}
	ln.done = append(ln.done, h)
}

func (c *commitNodes) get(id compact.NodeID) (merkle.Hash, bool) {
	if c.gap || id.Level >= uint(len(c.levels)) {
		return merkle.Hash{}, false
	}
	ln := &c.levels[id.Level]
	if id.Index >= ln.first && id.Index-ln.first < uint64(len(ln.done)) {
		return ln.done[id.Index-ln.first], true
	}
	if ln.hasPrefix && ln.prefix == id.Index {
		return ln.prefixH, true
	}
	return merkle.Hash{}, false
}

// state is what the committer keeps in memory between transactions.
type state struct {
	size  uint64
	rng   *compact.Range
	tails map[uint][]byte // even level -> hashes of its last, partial chunk
	// mem holds the leaves past the runs, fewer than runLeaves.
	mem  map[merkle.Hash]uint64
	runs []run // as stored under runsKey
}

func (s *state) runsEnd() uint64 {
	if len(s.runs) == 0 {
		return 0
	}
	r := s.runs[len(s.runs)-1]
	return r.start + r.count
}

type request struct {
	hashes []merkle.Hash
	leaves [][]byte
	idx    []uint64
	proof  *commitProof // of the commit that wrote the batch, if it added any leaf
	err    error
	done   chan struct{}
}

var rangeFactory = &compact.RangeFactory{Hash: merkle.HashChildren}

// Open opens the log stored in cfg.DB, creating its buckets on first use,
// and starts its committer. Close it before closing the database.
func Open(ctx context.Context, cfg Config) (*Log, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("boltlog: no database")
	case cfg.Signer == nil:
		return nil, errors.New("boltlog: no log signer")
	case cfg.Origin == "":
		return nil, errors.New("boltlog: no origin")
	case cfg.Signer.Name() != cfg.Origin:
		return nil, fmt.Errorf("boltlog: signer key is named %q, want the origin %q", cfg.Signer.Name(), cfg.Origin)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 4096
	}
	if cfg.MaxGap <= 0 || cfg.MaxGap > cfg.MaxWait {
		cfg.MaxGap = cfg.MaxWait / 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.mergeInCommit == 0 {
		cfg.mergeInCommit = defaultMergeInCommit
	}
	if cfg.mergeStep <= 0 {
		cfg.mergeStep = defaultMergeStep
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := cfg.DB.Update(createBuckets); err != nil {
		return nil, fmt.Errorf("boltlog: create buckets: %w", err)
	}
	st, err := loadState(cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("boltlog: load: %w", err)
	}
	l := &Log{
		db:            cfg.DB,
		origin:        cfg.Origin,
		signer:        cfg.Signer,
		log:           cfg.Logger,
		maxBatch:      cfg.MaxBatch,
		maxWait:       cfg.MaxWait,
		maxGap:        cfg.MaxGap,
		queue:         make(chan *request, 1024),
		stop:          make(chan struct{}),
		stopped:       make(chan struct{}),
		st:            st,
		mergeInCommit: cfg.mergeInCommit,
		mergeStep:     cfg.mergeStep,
	}
	if err := l.publish(st, nil); err != nil {
		return nil, err
	}
	go l.commitLoop()
	return l, nil
}

func loadState(db *bbolt.DB) (*state, error) {
	st := &state{tails: map[uint][]byte{}, mem: map[merkle.Hash]uint64{}}
	err := db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		st.size = b.size()
		var hashes [][]byte
		for _, id := range compact.RangeNodes(0, st.size, nil) {
			h, err := b.storedHash(id.Level, id.Index)
			if err != nil {
				return err
			}
			hashes = append(hashes, h[:])
		}
		if st.rng, err = rangeFactory.NewRange(0, st.size, hashes); err != nil {
			return err
		}
		for level := uint(0); st.size>>level > 0; level += 2 {
			count := st.size >> level
			if count%chunkHashes == 0 {
				continue
			}
			chunk := b.hashes.Get(chunkKey(level, count/chunkHashes))
			want := int(count%chunkHashes) * merkle.HashSize
			if len(chunk) != want {
				return fmt.Errorf("level %d chunk %d holds %d bytes, want %d", level, count/chunkHashes, len(chunk), want)
			}
			st.tails[level] = slices.Clone(chunk)
		}
		if st.runs, err = b.runs(); err != nil {
			return err
		}
		if err := b.checkRuns(st.runs, st.size/runLeaves*runLeaves); err != nil {
			return err
		}
		for i := st.runsEnd(); i < st.size; i++ {
			h, err := b.storedHash(0, i)
			if err != nil {
				return err
			}
			st.mem[h] = i
		}
		return nil
	})
	return st, err
}

// publish makes a committed state visible to Checkpoint.
func (l *Log) publish(st *state, last *commitProof) error {
	root := merkle.EmptyRoot()
	if st.size > 0 {
		r, err := st.rng.GetRootHash(nil)
		if err != nil {
			return fmt.Errorf("boltlog: root: %w", err)
		}
		root = merkle.Hash(r)
	}
	if last != nil {
		last.root = root
	}
	l.pubMu.Lock()
	l.pubSize, l.pubRoot, l.last = st.size, root, last
	l.pubMu.Unlock()
	return nil
}

// Close stops the committer, failing appends still queued with
// merkle.ErrClosed. It does not close the database.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	l.closeMu.Unlock()
	<-l.stopped
	return nil
}

func (l *Log) isClosed() bool {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	return l.closed
}

// Append implements merkle.Log. If ctx ends while the batch is being
// committed, Append returns ctx's error and the leaves may or may not be in
// the log; retrying is safe.
func (l *Log) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	req, err := l.append(ctx, leaves, nil)
	if err != nil {
		return nil, err
	}
	return req.idx, nil
}

// AppendProved implements merkle.ProvingLog: the proofs come from the
// nodes the commit had in memory, and the checkpoint is signed once per
// commit.
func (l *Log) AppendProved(ctx context.Context, leaves [][]byte, hashes []merkle.Hash) ([]merkle.Proved, error) {
	if hashes != nil && len(hashes) != len(leaves) {
		return nil, fmt.Errorf("%d hashes for %d leaves", len(hashes), len(leaves))
	}
	req, err := l.append(ctx, leaves, hashes)
	if err != nil {
		return nil, err
	}
	out := make([]merkle.Proved, len(req.idx))
	for i, idx := range req.idx {
		out[i].Index = idx
		c := req.proof
		if c == nil || idx < c.start {
			continue // in the log already
		}
		cp, err := c.checkpoint(l)
		if err != nil {
			return nil, fmt.Errorf("checkpoint of size %d: %w", c.size, err)
		}
		p, ok := c.prove(idx)
		if !ok {
			l.misses.Add(1)
			if p, err = l.InclusionProof(ctx, idx, c.size); err != nil {
				return nil, err
			}
		}
		out[i].Checkpoint, out[i].Proof = cp, p
	}
	return out, nil
}

// append queues leaves for the committer and waits for their commit.
// hashes, unless nil, are their leaf hashes.
func (l *Log) append(ctx context.Context, leaves [][]byte, hashes []merkle.Hash) (*request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &request{leaves: leaves, hashes: hashes, done: make(chan struct{})}
	if hashes == nil {
		req.hashes = make([]merkle.Hash, len(leaves))
	}
	for i, leaf := range leaves {
		if err := merkle.CheckLeaf(leaf); err != nil {
			return nil, fmt.Errorf("leaf %d of %d: %w", i, len(leaves), err)
		}
		if hashes == nil {
			req.hashes[i] = merkle.LeafHash(leaf)
		}
	}
	if len(leaves) == 0 {
		req.idx = []uint64{}
		return req, nil
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return nil, merkle.ErrClosed
	}
	select {
	case l.queue <- req:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return nil, ctx.Err()
	}
	l.closeMu.RUnlock()
	select {
	case <-req.done:
		if req.err != nil {
			return nil, req.err
		}
		return req, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *Log) commitLoop() {
	defer close(l.stopped)
	gap := time.NewTimer(time.Hour)
	gap.Stop()
	concurrent := false // the previous batch coalesced several requests
	for {
		first, ok := l.next()
		if !ok {
			l.failQueued()
			return
		}
		batch, n := []*request{first}, len(first.leaves)
		var deadline time.Time
		if concurrent && l.maxWait > 0 {
			deadline = time.Now().Add(l.maxWait)
		}
	fill:
		for n < l.maxBatch {
			select {
			case r := <-l.queue:
				batch, n = append(batch, r), n+len(r.leaves)
				continue
			default:
			}
			// Nothing waiting: linger, while appends keep arriving and
			// the deadline allows.
			wait := time.Until(deadline)
			if deadline.IsZero() || wait <= 0 {
				break fill
			}
			gap.Reset(min(wait, l.maxGap))
			select {
			case r := <-l.queue:
				batch, n = append(batch, r), n+len(r.leaves)
				gap.Stop() // Go 1.23 timers: no stale tick after Stop
			case <-gap.C:
				break fill
			}
		}
		concurrent = len(batch) > 1
		err := l.commit(batch)
		if err != nil {
			l.log.Error("log commit failed", "leaves", n, "err", err)
		} else {
			l.mergeFailed = false
		}
		for _, r := range batch {
			if err != nil {
				r.idx, r.err = nil, err
			}
			close(r.done)
		}
	}
}

// next waits for the next append request, doing steps of a due merge of
// dedup runs while none waits; false once the log is closing.
func (l *Log) next() (*request, bool) {
	for {
		if l.merge == nil && !l.mergeFailed {
			l.merge, _ = dueMerge(l.st.runs)
		}
		if l.merge == nil {
			select {
			case r := <-l.queue:
				return r, true
			case <-l.stop:
				return nil, false
			}
		}
		select {
		case r := <-l.queue:
			return r, true
		case <-l.stop:
			return nil, false
		default:
		}
		if err := l.mergeOneStep(); err != nil {
			l.log.Error("dedup run merge failed", "err", err)
			// Again from its start, after the next commit.
			l.merge, l.mergeFailed = nil, true
		}
	}
}

func (l *Log) failQueued() {
	for {
		select {
		case r := <-l.queue:
			r.err = merkle.ErrClosed
			close(r.done)
		default:
			return
		}
	}
}

// errNothingNew rolls back a transaction whose leaves were all present.
var errNothingNew = errors.New("nothing new")

// commit writes the new leaves of batch in one transaction and, once it is
// durable, moves the in-memory state forward. On error the state is as
// before.
func (l *Log) commit(batch []*request) error {
	st := l.st
	next := st.size
	fresh := map[merkle.Hash]uint64{}
	var newHashes []merkle.Hash
	var newLeaves [][]byte
	var runs []run
	var tails map[uint][]byte
	var rng *compact.Range
	// The nodes that prove this commit's leaves (see commitProof).
	nodes := &commitNodes{}
	for i, id := range compact.RangeNodes(0, st.size, nil) {
		nodes.addPrefix(id, merkle.Hash(st.rng.Hashes()[i]))
	}
	start := st.size
	err := l.db.Update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		for _, r := range batch {
			r.idx = make([]uint64, len(r.hashes))
			for i, h := range r.hashes {
				if idx, ok := fresh[h]; ok {
					r.idx[i] = idx
					continue
				}
				idx, ok, err := st.lookup(b, h)
				if err != nil {
					return err
				}
				if ok {
					r.idx[i] = idx
					continue
				}
				if next >= maxLogIndex {
					return fmt.Errorf("log is full at %d leaves", next)
				}
				r.idx[i] = next
				fresh[h] = next
				newHashes = append(newHashes, h)
				newLeaves = append(newLeaves, r.leaves[i])
				next++
			}
		}
		if len(newHashes) == 0 {
			return errNothingNew
		}
		if err := putLeaves(b, st.size, newLeaves); err != nil {
			return err
		}
		if rng, tails, err = st.putHashes(b, newHashes, nodes); err != nil {
			return err
		}
		if err := b.meta.Put([]byte(sizeKey), u64(next)); err != nil {
			return err
		}
		if runs, err = st.putRuns(b, next, fresh, l.mergeInCommit); err != nil {
			return err
		}
		if st.runsEnd() != next/runLeaves*runLeaves {
			return b.putRunList(runs)
		}
		return nil
	})
	if errors.Is(err, errNothingNew) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("commit %d leaves at %d: %w", len(newHashes), st.size, diagnoseFull(l.db, err))
	}
	l.commits.Add(1)
	// Durable: move the in-memory state forward.
	st.size, st.rng, st.tails = next, rng, tails
	for h, i := range fresh {
		st.mem[h] = i
	}
	if len(runs) > 0 && runs[len(runs)-1].start+runs[len(runs)-1].count > st.runsEnd() {
		// mem holds exactly the leaves past the runs.
		st.runs = runs
		for h, i := range st.mem {
			if i < st.runsEnd() {
				delete(st.mem, h)
			}
		}
	}
	proved := &commitProof{start: start, size: next, nodes: nodes}
	for _, r := range batch {
		r.proof = proved
	}
	return l.publish(st, proved)
}

// lookup finds a leaf hash among the leaves already committed: in
// memory, then in each run, from the newest, since a retried append is
// most likely a recent one.
func (s *state) lookup(b buckets, h merkle.Hash) (uint64, bool, error) {
	if idx, ok := s.mem[h]; ok {
		return idx, true, nil
	}
	var idx uint64
	for _, r := range slices.Backward(s.runs) {
		ok, err := b.lookupRun(r, h, func(i uint64) bool {
			stored, err := b.storedHash(0, i)
			idx = i
			return err == nil && stored == h
		})
		if ok || err != nil {
			return idx, ok, err
		}
	}
	return 0, false, nil
}

// putLeaves stores leaves, the first of which gets index first, packed
// whole into values that fit one page each: the last value is rewritten
// until full. Page-sized values matter: bbolt keeps up to four values in one
// node however large they are and rewrites the node whole, and it reuses
// freed pages only for allocations that fit.
func putLeaves(b buckets, first uint64, leaves [][]byte) error {
	// Each value is built in a buffer of a page's size, not grown by append.
	key, buf := first, make([]byte, 0, leafChunkBytes)
	if k, v := b.leaves.Cursor().Last(); k != nil && len(v) < leafChunkBytes {
		key, buf = binary.BigEndian.Uint64(k), append(buf, v...)
	}
	for i, leaf := range leaves {
		if len(buf) > 0 && len(buf)+binary.MaxVarintLen32+len(leaf) > leafChunkBytes {
			if err := b.leaves.Put(u64(key), buf); err != nil {
				return err
			}
			key, buf = first+uint64(i), make([]byte, 0, max(leafChunkBytes, binary.MaxVarintLen32+len(leaf)))
		}
		buf = binary.AppendUvarint(buf, uint64(len(leaf)))
		buf = append(buf, leaf...)
	}
	return b.leaves.Put(u64(key), buf)
}

// putHashes extends the tree by the new leaf hashes, storing every new
// perfect-subtree hash at an even level. It returns the new compact range
// and chunk tails without touching s.
func (s *state) putHashes(b buckets, newHashes []merkle.Hash, nodes *commitNodes) (*compact.Range, map[uint][]byte, error) {
	rng, err := rangeFactory.NewRange(0, s.size, slices.Clone(s.rng.Hashes()))
	if err != nil {
		return nil, nil, err
	}
	tails := make(map[uint][]byte, len(s.tails))
	for level, t := range s.tails {
		tails[level] = t
	}
	touched := map[uint]uint64{} // level -> chunk of its tail
	var putErr error
	visit := func(id compact.NodeID, hash []byte) {
		nodes.add(id, merkle.Hash(hash))
		if id.Level%2 == 1 || putErr != nil {
			return
		}
		chunk, off := id.Index/chunkHashes, id.Index%chunkHashes
		t := tails[id.Level]
		if _, ok := touched[id.Level]; !ok {
			t = slices.Clip(t) // never write into a slice a past Put may hold
		}
		if int(off)*merkle.HashSize != len(t) {
			putErr = fmt.Errorf("hash (%d, %d) out of order", id.Level, id.Index)
			return
		}
		t = append(t, hash...)
		touched[id.Level] = chunk
		if off == chunkHashes-1 {
			putErr = b.hashes.Put(chunkKey(id.Level, chunk), t)
			t = nil
			delete(touched, id.Level)
		}
		tails[id.Level] = t
	}
	for _, h := range newHashes {
		if err := rng.Append(h[:], visit); err != nil {
			return nil, nil, err
		}
		if putErr != nil {
			return nil, nil, putErr
		}
	}
	for level, chunk := range touched {
		t := tails[level]
		if err := b.hashes.Put(chunkKey(level, chunk), t); err != nil {
			return nil, nil, err
		}
		tails[level] = slices.Clip(t)
	}
	return rng, tails, nil
}

// putRuns writes a dedup run for every whole runLeaves span of leaves that
// the new size completes, merging the last two runs while they are equal
// and their merge is at most mergeMax entries, and returns the new run list
// without touching s.
func (s *state) putRuns(b buckets, size uint64, fresh map[merkle.Hash]uint64, mergeMax uint64) ([]run, error) {
	runs := slices.Clone(s.runs)
	for start := s.runsEnd(); start+runLeaves <= size; start += runLeaves {
		v := make([]byte, runLeaves*entrySize)
		filled := 0
		collect := func(m map[merkle.Hash]uint64) {
			for h, i := range m {
				if i >= start && i < start+runLeaves {
					putEntry(v[(i-start)*entrySize:], h, i)
					filled++
				}
			}
		}
		collect(s.mem)
		collect(fresh)
		if filled != runLeaves {
			return nil, fmt.Errorf("dedup run at %d: found %d of %d leaves", start, filled, runLeaves)
		}
		sortEntries(v)
		r, err := b.writeRun(start, v)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
		for len(runs) >= 2 && runs[len(runs)-1].count == runs[len(runs)-2].count && 2*r.count <= mergeMax {
			m := newMerge(runs[len(runs)-2], runs[len(runs)-1])
			if err := b.step(m, math.MaxInt); err != nil {
				return nil, err
			}
			if runs, err = b.finish(m, runs); err != nil {
				return nil, err
			}
			r = m.out
		}
	}
	return runs, nil
}

// mergeOneStep writes one step of l.merge and, with its last, replaces the
// merged runs by their merge in the run list.
func (l *Log) mergeOneStep() error {
	m, st := l.merge, l.st
	var runs []run
	err := l.db.Update(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		if err := b.step(m, l.mergeStep); err != nil {
			return err
		}
		if !m.done() {
			return nil
		}
		if runs, err = b.finish(m, st.runs); err != nil {
			return err
		}
		return b.putRunList(runs)
	})
	if err != nil {
		return fmt.Errorf("merge dedup runs at %d and %d: %w", m.x.start, m.y.start, diagnoseFull(l.db, err))
	}
	if runs != nil {
		st.runs, l.merge = runs, nil
	}
	return nil
}

// Leaves implements merkle.Log.
func (l *Log) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	var out [][]byte
	err := l.view(ctx, func(b buckets) error {
		if size := b.size(); start > end || end > size {
			return &merkle.RangeError{Op: "leaves", A: start, B: end, TreeSize: size}
		}
		var err error
		out, err = b.leafRange(start, end)
		return err
	})
	return out, err
}

// Checkpoint implements merkle.Log. Checkpoints are signed on demand and
// cached; Ed25519 signatures are deterministic, so signing the same tree
// twice gives the same note.
func (l *Log) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return merkle.Checkpoint{}, err
	}
	if l.isClosed() {
		return merkle.Checkpoint{}, merkle.ErrClosed
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if l.signed != nil && l.signed.Size == l.pubSize {
		return *l.signed, nil
	}
	var cp merkle.Checkpoint
	var err error
	if l.last != nil && l.last.size == l.pubSize {
		cp, err = l.last.checkpoint(l) // shared with AppendProved's receipts
	} else {
		cp, err = merkle.SignCheckpoint(l.signer, l.origin, l.pubSize, l.pubRoot)
	}
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	l.signed = &cp
	return cp, nil
}

// InclusionProof implements merkle.Log.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([]merkle.Hash, error) {
	ps, err := l.InclusionProofs(ctx, []uint64{index}, size)
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// InclusionProofs implements merkle.MultiProver: one read transaction,
// and each node read or computed once for all the proofs.
func (l *Log) InclusionProofs(ctx context.Context, indexes []uint64, size uint64) ([][]merkle.Hash, error) {
	out := make([][]merkle.Hash, len(indexes))
	err := l.view(ctx, func(b buckets) error {
		tree := b.size()
		r := hashReader{memo: make(map[compact.NodeID]merkle.Hash, 24*len(indexes))}
		for i, index := range indexes {
			if index >= size || size > tree {
				return &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: tree}
			}
			nodes, err := proof.Inclusion(index, size)
			if err != nil {
				return err
			}
			if out[i], err = b.prove(nodes, &r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ConsistencyProof implements merkle.Log.
func (l *Log) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]merkle.Hash, error) {
	var p []merkle.Hash
	err := l.view(ctx, func(b buckets) error {
		if tree := b.size(); oldSize > newSize || newSize > tree {
			return &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: tree}
		}
		nodes, err := proof.Consistency(oldSize, newSize)
		if err != nil {
			return err
		}
		p, err = b.prove(nodes, &hashReader{})
		return err
	})
	return p, err
}

func (b buckets) prove(nodes proof.Nodes, r *hashReader) ([]merkle.Hash, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := r.hash(b, id.Level, id.Index)
		if err != nil {
			return nil, err
		}
		hashes[i] = h[:]
	}
	hashes, err := nodes.Rehash(hashes, merkle.HashChildren)
	if err != nil {
		return nil, err
	}
	p := make([]merkle.Hash, len(hashes))
	for i, h := range hashes {
		p[i] = merkle.Hash(h)
	}
	return p, nil
}

func (l *Log) view(ctx context.Context, f func(b buckets) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.isClosed() {
		return merkle.ErrClosed
	}
	return l.db.View(func(tx *bbolt.Tx) error {
		b, err := openBuckets(tx)
		if err != nil {
			return err
		}
		return f(b)
	})
}
