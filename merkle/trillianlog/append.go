package trillianlog

import (
	"context"
	"fmt"
	"time"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A waiter is a leaf hash some Append calls wait for: done is closed once
// its index is known, or the Log closed.
type waiter struct {
	hash     merkle.Hash
	refs     int // Append calls waiting; the entry goes when it drops to 0
	finished bool
	index    uint64
	err      error
	done     chan struct{}
}

// finish records the outcome. Called with Log.mu held.
func (w *waiter) finish(index uint64, err error) {
	if w.finished {
		return
	}
	w.finished, w.index, w.err = true, index, err
	close(w.done)
}

// Append queues each new leaf with QueueLeaf, in order, and returns once
// Trillian has integrated every one of them.
func (l *Log) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	if err := l.checkOpen(); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	for i, leaf := range leaves {
		if err := merkle.CheckLeaf(leaf); err != nil {
			return nil, fmt.Errorf("append: leaf %d of %d: %w", i, len(leaves), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	if len(leaves) == 0 {
		return []uint64{}, nil
	}

	// The distinct leaves, in order of first appearance.
	first := make(map[merkle.Hash]int, len(leaves))
	slot := make([]int, len(leaves)) // leaf i -> its position in uniq
	var uniq []int
	for i, leaf := range leaves {
		h := merkle.LeafHash(leaf)
		k, ok := first[h]
		if !ok {
			k = len(uniq)
			first[h] = k
			uniq = append(uniq, i)
		}
		slot[i] = k
	}

	// Wait for the hashes before queueing them: the watcher then scans
	// every leaf integrated from now on for them.
	ws, err := l.register(leaves, uniq)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	defer l.release(ws)

	var existing []*waiter
	for k, i := range uniq {
		if err := l.checkOpen(); err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
		resp, err := l.queue(ctx, leaves[i], ws[k].hash)
		if err != nil {
			return nil, fmt.Errorf("append: leaf %d of %d: %w", i, len(leaves), l.rpcError(ctx, "queue leaf", err))
		}
		switch c := codes.Code(resp.GetQueuedLeaf().GetStatus().GetCode()); c {
		case codes.OK:
		case codes.AlreadyExists:
			existing = append(existing, ws[k])
		default:
			return nil, fmt.Errorf("append: leaf %d of %d: trillian: queue leaf: %v: %s", i, len(leaves), c, resp.GetQueuedLeaf().GetStatus().GetMessage())
		}
	}
	// A leaf Trillian already had may have been integrated before we
	// started waiting for it.
	if len(existing) > 0 {
		if err := l.lookup(ctx, existing); err != nil {
			return nil, fmt.Errorf("append: %w", err)
		}
	}

	idx := make([]uint64, len(uniq))
	for k, w := range ws {
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("append: waiting for trillian to integrate leaf %d: %w", uniq[k], ctx.Err())
		}
		if w.err != nil {
			return nil, fmt.Errorf("append: %w", w.err)
		}
		idx[k] = w.index
	}
	out := make([]uint64, len(leaves))
	for i := range leaves {
		out[i] = idx[slot[i]]
	}
	return out, nil
}

// queueAttempts bounds the tries of one QueueLeaf.
const queueAttempts = 5

// queue sends one leaf with QueueLeaf. QueueLeaf is idempotent (the leaf's
// identity hash dedups it), so a transient failure is retried: Trillian's
// MySQL storage, for one, fails a leaf queued by two callers at the same
// moment with "failed to retrieve all existing leaves" (code Unknown) when
// the other caller's insert is not yet visible to it.
func (l *Log) queue(ctx context.Context, leaf []byte, h merkle.Hash) (*trillian.QueueLeafResponse, error) {
	req := &trillian.QueueLeafRequest{
		LogId: l.treeID,
		Leaf:  &trillian.LogLeaf{LeafValue: leaf, LeafIdentityHash: h[:]},
	}
	delay := l.poll
	for attempt := 1; ; attempt++ {
		resp, err := l.client.QueueLeaf(ctx, req)
		switch status.Code(err) {
		case codes.OK:
			return resp, nil
		case codes.Unknown, codes.Unavailable, codes.Aborted, codes.Internal:
			if attempt < queueAttempts && ctx.Err() == nil {
				l.log.Debug("trillianlog: retrying QueueLeaf", "attempt", attempt, "err", err)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				delay *= 2
				continue
			}
		}
		return nil, err
	}
}

// register adds a waiter for each distinct leaf, or joins the one already
// there, and wakes the watcher.
func (l *Log) register(leaves [][]byte, uniq []int) ([]*waiter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, merkle.ErrClosed
	}
	ws := make([]*waiter, len(uniq))
	for k, i := range uniq {
		h := merkle.LeafHash(leaves[i])
		w := l.waiting[h]
		if w == nil {
			w = &waiter{hash: h, done: make(chan struct{})}
			l.waiting[h] = w
		}
		w.refs++
		ws[k] = w
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return ws, nil
}

// release drops the Append call's interest in its waiters.
func (l *Log) release(ws []*waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range ws {
		w.refs--
		if w.refs == 0 && l.waiting[w.hash] == w {
			delete(l.waiting, w.hash)
		}
	}
}

// resolve finishes the waiter for h, if there is one. Called with l.mu
// held.
func (l *Log) resolve(h merkle.Hash, index uint64) {
	if w := l.waiting[h]; w != nil {
		w.finish(index, nil)
		delete(l.waiting, h)
	}
}

// lookup finds waiters' leaves in the tree of the latest root seen, with
// GetInclusionProofByHash, and finishes those it finds. A leaf not found
// is not integrated in that tree yet: the watcher will see it.
func (l *Log) lookup(ctx context.Context, ws []*waiter) error {
	l.mu.Lock()
	size := l.root.size
	l.mu.Unlock()
	if size == 0 {
		return nil
	}
	for _, w := range ws {
		resp, err := l.client.GetInclusionProofByHash(ctx, &trillian.GetInclusionProofByHashRequest{
			LogId:           l.treeID,
			LeafHash:        w.hash[:],
			TreeSize:        int64(size),
			OrderBySequence: true,
		})
		if isRangeCode(err) {
			continue
		}
		if err != nil {
			return l.rpcError(ctx, "get inclusion proof by hash", err)
		}
		proofs := resp.GetProof()
		if len(proofs) == 0 {
			continue
		}
		index := proofs[0].GetLeafIndex()
		for _, p := range proofs[1:] {
			index = min(index, p.GetLeafIndex())
		}
		if index < 0 || uint64(index) >= size {
			return fmt.Errorf("trillian found leaf %v at index %d, outside the tree of size %d", w.hash, index, size)
		}
		l.mu.Lock()
		l.resolve(w.hash, uint64(index))
		l.mu.Unlock()
	}
	return nil
}

// pollTimeout bounds one poll of the watcher, so that a call Trillian never
// answers does not hold up root fetches (which run one at a time) forever.
const pollTimeout = 30 * time.Second

// watch polls the latest root while appends wait, and tells them where
// their leaves landed.
func (l *Log) watch() {
	defer close(l.stopped)
	delay := l.poll
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		l.mu.Lock()
		idle := len(l.waiting) == 0
		l.mu.Unlock()
		if idle {
			select {
			case <-l.wake:
				delay = l.poll
			case <-l.ctx.Done():
				return
			}
		}
		t.Reset(delay)
		select {
		case <-t.C:
		case <-l.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(l.ctx, pollTimeout)
		grew, err := l.scan(ctx)
		cancel()
		switch {
		case l.ctx.Err() != nil:
			return
		case err != nil:
			l.log.Warn("trillianlog: poll for integrated leaves", "err", err)
			delay = min(2*delay, l.maxPoll)
		case grew:
			delay = l.poll
		default:
			delay = min(delay*3/2, l.maxPoll)
		}
	}
}

// scan fetches the latest root and finds the waiting leaves among those
// integrated since the last scan. It reports whether the tree grew.
//
// Every waiter was registered before its leaf was queued, so its leaf is
// either at an index at or beyond l.scanned at that moment, or (if Trillian
// already had it) found by Append's own lookup. scan therefore looks at
// every leaf from l.scanned on while anyone waits: it reads the new leaves
// with GetLeavesByRange, or, when there are more new leaves than waiters
// to look for, looks up each waiter by hash instead.
func (l *Log) scan(ctx context.Context) (bool, error) {
	r, err := l.latestRoot(ctx)
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	from := l.scanned
	var want []*waiter
	for _, w := range l.waiting {
		want = append(want, w)
	}
	if r.size > from && len(want) == 0 {
		// A waiter registered from now on queues its leaf after r was
		// read: the leaf is not in r.
		l.scanned = r.size
	}
	l.mu.Unlock()
	if r.size <= from || len(want) == 0 {
		return r.size > from, nil
	}

	calls := (r.size - from + leavesPerCall - 1) / leavesPerCall
	if calls > uint64(len(want)) {
		// Cheaper to look for each waiter than to read every new leaf:
		// another replica appended a lot, or this one was idle.
		if err := l.lookup(ctx, want); err != nil {
			return false, err
		}
		l.mu.Lock()
		l.scanned = max(l.scanned, r.size)
		l.mu.Unlock()
		return true, nil
	}
	for next := from; next < r.size; {
		leaves, err := l.leafRange(ctx, next, r.size)
		if err != nil {
			return false, fmt.Errorf("scan leaves [%d, %d): %w", next, r.size, err)
		}
		l.mu.Lock()
		for _, lf := range leaves {
			l.resolve(merkle.Hash(lf.GetMerkleLeafHash()), uint64(lf.GetLeafIndex()))
		}
		next += uint64(len(leaves))
		l.scanned = max(l.scanned, next)
		l.mu.Unlock()
	}
	return true, nil
}
