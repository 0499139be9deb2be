package tilelog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// A Mirror is a read-only merkle.TileLog holding a verified copy of a
// remote log. It follows the origin (see Client): it fetches each new
// checkpoint, verifies its signature, its consistency with the last
// verified one and every new entry, appends the entries to its local
// storage, checks that the local tree then has the checkpoint's root, and
// only then publishes the checkpoint: Checkpoint returns it, the origin's
// note verbatim (cosignatures included), and every read is bounded by its
// size. The published checkpoint is kept in a file, so that a restart
// resumes from it.
//
// A contradiction (ErrInconsistent: a bad signature, a fork, a tree that
// shrank, an entry or tile that does not match) stops the following for
// good, logged at Error; the Mirror keeps serving what it published
// before. An origin that does not answer, or answers with something that
// is not well formed (ErrUnavailable), is asked again, less and less
// often.
type Mirror struct {
	client    *Client
	local     merkle.TileLog
	statePath string
	log       *slog.Logger
	interval  time.Duration
	maxWait   time.Duration

	mu        sync.RWMutex
	published merkle.Checkpoint // Note is nil before the first
	stopped   error             // the ErrInconsistent that stopped following
	lastErr   error             // the last round's error, nil after a good one
	lastGood  time.Time         // when a round last ended without error

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

var (
	_ merkle.TileLog     = (*Mirror)(nil)
	_ merkle.MultiProver = (*Mirror)(nil)
)

// Config carries what a Mirror needs.
type Config struct {
	Client *Client
	// Local stores the mirrored leaves, and proves and tiles them: a log
	// used as storage only, whose own checkpoints are never published (a
	// boltlog.Log with any signer). It must be empty, or hold what an
	// earlier Mirror with the same StatePath appended.
	Local merkle.TileLog
	// StatePath is the file that keeps the published checkpoint.
	StatePath string
	Logger    *slog.Logger
	// Interval is how often the origin's checkpoint is fetched. Default
	// 1s.
	Interval time.Duration
	// MaxInterval bounds how long an origin that fails is left alone
	// before it is asked again; the wait doubles from Interval at each
	// failure. Default 1m.
	MaxInterval time.Duration
}

// Open returns a Mirror that publishes the checkpoint kept in
// cfg.StatePath, if there is one, after checking it again against the
// log key and against the local storage, and starts following the origin.
// Close stops it.
func Open(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.Client == nil || cfg.Local == nil || cfg.StatePath == "" {
		return nil, errors.New("tilelog: a mirror needs a client, local storage and a state file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.MaxInterval < cfg.Interval {
		cfg.MaxInterval = max(time.Minute, cfg.Interval)
	}
	m := &Mirror{
		client: cfg.Client, local: cfg.Local, statePath: cfg.StatePath, log: cfg.Logger,
		interval: cfg.Interval, maxWait: cfg.MaxInterval,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
	}
	b, err := os.ReadFile(cfg.StatePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("tilelog: read the mirror's checkpoint: %w", err)
	default:
		cp, err := m.client.Verify(b)
		if err != nil {
			return nil, fmt.Errorf("tilelog: the mirror's checkpoint %s: %w", cfg.StatePath, err)
		}
		if err := m.checkLocal(ctx, cp); err != nil {
			return nil, fmt.Errorf("tilelog: the mirror's local copy does not hold its checkpoint %s: %w", cfg.StatePath, err)
		}
		m.published = cp
	}
	go m.run()
	return m, nil
}

// Close stops following. It does not close the local storage.
func (m *Mirror) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	return nil
}

// A Status says how a Mirror follows its origin.
type Status struct {
	URL    string // the origin's base URL
	Origin string // the log's origin
	// Checkpoint is the latest verified checkpoint, published; its Note
	// is nil before the first.
	Checkpoint merkle.Checkpoint
	// Stopped is the contradiction that stopped the following, or nil
	// while it follows.
	Stopped error
	// LastErr is the last round's error (Stopped, or a retried one), nil
	// after a round without one.
	LastErr  error
	LastGood time.Time // when a round last ended without error
}

// Status returns how the Mirror follows its origin.
func (m *Mirror) Status() Status {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return Status{URL: m.client.URL(), Origin: m.client.Origin(), Checkpoint: m.published,
		Stopped: m.stopped, LastErr: m.lastErr, LastGood: m.lastGood}
}

// Sync asks the follower to fetch the origin's checkpoint now rather than
// at its next tick.
func (m *Mirror) Sync() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (m *Mirror) run() {
	defer close(m.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := time.Duration(0)
	for {
		t := time.NewTimer(wait)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-m.kick:
			t.Stop()
		case <-t.C:
		}
		err := m.round(ctx)
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		m.lastErr = err
		if err == nil {
			m.lastGood = time.Now()
		}
		m.mu.Unlock()
		switch {
		case errors.Is(err, ErrInconsistent):
			m.mu.Lock()
			m.stopped = err
			size := m.published.Size
			m.mu.Unlock()
			m.log.Error("mirror stopped following its origin: a contradiction with what was verified; serving the last verified checkpoint",
				"origin_url", m.client.URL(), "origin", m.client.Origin(), "size", size, "err", err)
			<-m.stop
			return
		case err != nil:
			wait = min(max(2*wait, m.interval), m.maxWait)
			m.log.Warn("mirror could not follow its origin; trying again", "origin_url", m.client.URL(), "retry_in", wait.String(), "err", err)
		default:
			wait = m.interval
		}
	}
}

// chunk is how many entries a round fetches, verifies and appends at a
// time: a long catch-up holds one chunk in memory, not all of it.
const chunk = 16 * merkle.TileWidth

// round fetches the origin's checkpoint and, if it is new, verifies and
// copies what it adds, then publishes it.
func (m *Mirror) round(ctx context.Context) error {
	cp, err := m.client.Checkpoint(ctx)
	if err != nil {
		return err
	}
	m.mu.RLock()
	pub := m.published
	m.mu.RUnlock()
	if pub.Note != nil {
		if err := m.client.Consistent(ctx, pub, cp); err != nil {
			return err
		}
		if cp.Size == pub.Size {
			// The same tree, signed again or with other witness
			// cosignatures: publish the note the origin serves now, so
			// that bundles stay byte for byte the origin's.
			if string(cp.Note) != string(pub.Note) {
				return m.publish(cp)
			}
			return nil
		}
	}
	local, err := m.local.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("read the local copy: %w", err)
	}
	if local.Size < pub.Size {
		return fmt.Errorf("%w: the local copy holds %d entries, fewer than the published checkpoint's %d", ErrInconsistent, local.Size, pub.Size)
	}
	// Entries past the published size were verified against a
	// checkpoint that a crash kept from being published. Before more are
	// appended after them, the tiles must show them in cp's tree; the
	// local root check below covers them when cp is smaller.
	if local.Size > pub.Size && local.Size <= cp.Size {
		if err := m.client.Consistent(ctx, local, cp); errors.Is(err, ErrInconsistent) {
			return fmt.Errorf("%w: the local copy's entries past the kept checkpoint (%d to %d) are not the origin's: %v", ErrInconsistent, pub.Size, local.Size, err)
		} else if err != nil {
			return err
		}
	}
	for from := local.Size; from < cp.Size; {
		to := min(cp.Size, from+chunk)
		leaves, err := m.client.Entries(ctx, cp, from, to)
		if err != nil {
			return err
		}
		idx, err := m.local.Append(ctx, leaves)
		if err != nil {
			return fmt.Errorf("append entries [%d, %d) to the local copy: %w", from, to, err)
		}
		for i, x := range idx {
			if x != from+uint64(i) {
				return fmt.Errorf("%w: entry %d repeats entry %d: the local copy keeps each leaf once", ErrInconsistent, from+uint64(i), x)
			}
		}
		from = to
	}
	if err := m.checkLocal(ctx, cp); err != nil {
		return err
	}
	return m.publish(cp)
}

// checkLocal checks that the local copy holds the tree of cp: at least
// its size, with its root at that size.
func (m *Mirror) checkLocal(ctx context.Context, cp merkle.Checkpoint) error {
	local, err := m.local.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("read the local copy: %w", err)
	}
	switch {
	case local.Size < cp.Size:
		return fmt.Errorf("%w: the local copy holds %d entries, fewer than the checkpoint's %d", ErrInconsistent, local.Size, cp.Size)
	case local.Size == cp.Size && local.Root != cp.Root:
		return fmt.Errorf("%w: the local copy of size %d has root %v, the checkpoint %v", ErrInconsistent, cp.Size, local.Root, cp.Root)
	case local.Size == cp.Size || cp.Size == 0:
		return nil
	}
	p, err := m.local.ConsistencyProof(ctx, cp.Size, local.Size)
	if err != nil {
		return fmt.Errorf("prove the local copy: %w", err)
	}
	if err := merkle.VerifyConsistency(cp.Size, local.Size, cp.Root, local.Root, p); err != nil {
		return fmt.Errorf("%w: the local copy does not hold the checkpoint's tree of size %d: %v", ErrInconsistent, cp.Size, err)
	}
	return nil
}

// publish keeps cp in the state file, durably, then makes it the
// checkpoint readers see.
func (m *Mirror) publish(cp merkle.Checkpoint) error {
	if err := writeFileSync(m.statePath, cp.Note); err != nil {
		return fmt.Errorf("keep the mirror's checkpoint: %w", err)
	}
	m.mu.Lock()
	m.published = cp
	m.mu.Unlock()
	m.log.Info("mirror verified a checkpoint", "origin", cp.Origin, "size", cp.Size)
	return nil
}

// writeFileSync replaces path with b durably: a temporary file, synced,
// renamed over path, then the directory synced, so that a power cut
// leaves the old file or the new one.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isClosed reports whether Close was called: every method returns
// merkle.ErrClosed from then on, whatever the local storage does.
func (m *Mirror) isClosed() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

// checkpoint returns the published checkpoint.
func (m *Mirror) checkpoint() merkle.Checkpoint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.published
}

// Append refuses: a mirror takes its entries from its origin only. The
// error matches merkle.ErrReadOnly and names the origin's URL.
func (m *Mirror) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	return nil, fmt.Errorf("%w: append to the origin, %s", merkle.ErrReadOnly, m.client.URL())
}

// Checkpoint returns the latest verified checkpoint of the origin: its
// note verbatim. Before the first, it is the empty tree with no note.
func (m *Mirror) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return merkle.Checkpoint{}, err
	}
	if m.isClosed() {
		return merkle.Checkpoint{}, merkle.ErrClosed
	}
	cp := m.checkpoint()
	if cp.Note == nil {
		return merkle.Checkpoint{Origin: m.client.Origin(), Root: merkle.EmptyRoot()}, nil
	}
	return cp, nil
}

// Leaves returns leaves of the published tree.
func (m *Mirror) Leaves(ctx context.Context, start, end uint64) ([][]byte, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	if size := m.checkpoint().Size; start > end || end > size {
		return nil, &merkle.RangeError{Op: "leaves", A: start, B: end, TreeSize: size}
	}
	return m.local.Leaves(ctx, start, end)
}

// InclusionProof proves a leaf in a tree no larger than the published one.
func (m *Mirror) InclusionProof(ctx context.Context, index, size uint64) ([]merkle.Hash, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	if pub := m.checkpoint().Size; index >= size || size > pub {
		return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: pub}
	}
	return m.local.InclusionProof(ctx, index, size)
}

// InclusionProofs proves several leaves in a tree no larger than the
// published one.
func (m *Mirror) InclusionProofs(ctx context.Context, indexes []uint64, size uint64) ([][]merkle.Hash, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	pub := m.checkpoint().Size
	if size > pub {
		var first uint64
		if len(indexes) > 0 {
			first = indexes[0]
		}
		return nil, &merkle.RangeError{Op: "inclusion proof", A: first, B: size, TreeSize: pub}
	}
	for _, index := range indexes {
		if index >= size {
			return nil, &merkle.RangeError{Op: "inclusion proof", A: index, B: size, TreeSize: pub}
		}
	}
	return merkle.InclusionProofs(ctx, m.local, indexes, size)
}

// ConsistencyProof proves that one tree extends another, both no larger
// than the published one.
func (m *Mirror) ConsistencyProof(ctx context.Context, oldSize, newSize uint64) ([]merkle.Hash, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	if pub := m.checkpoint().Size; oldSize > newSize || newSize > pub {
		return nil, &merkle.RangeError{Op: "consistency proof", A: oldSize, B: newSize, TreeSize: pub}
	}
	return m.local.ConsistencyProof(ctx, oldSize, newSize)
}

// Tile serves a hash tile of the published tree.
func (m *Mirror) Tile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	pub := m.checkpoint().Size
	// The tree of size pub has pub >> (TileHeight*level) complete hashes
	// at tile level `level`.
	if width < 1 || width > merkle.TileWidth || index > pub || index*merkle.TileWidth+uint64(width) > pub>>(merkle.TileHeight*uint(level)) {
		return nil, &merkle.RangeError{Op: "tile", A: index, B: uint64(width), TreeSize: pub}
	}
	return m.local.Tile(ctx, level, index, width)
}

// EntryBundle serves an entry bundle of the published tree.
func (m *Mirror) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	if m.isClosed() {
		return nil, merkle.ErrClosed
	}
	pub := m.checkpoint().Size
	if width < 1 || width > merkle.TileWidth || index > pub || index*merkle.TileWidth+uint64(width) > pub {
		return nil, &merkle.RangeError{Op: "entry bundle", A: index, B: uint64(width), TreeSize: pub}
	}
	return m.local.EntryBundle(ctx, index, width)
}
