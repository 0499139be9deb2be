package witness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// A Witnessed log publishes only checkpoints that carry the cosignatures a
// policy requires (C2SP tlog-witness and tlog-cosignature): it wraps a log, submits each new checkpoint of it to the
// policy's witnesses (their URLs are the policy's witness URLs) with a
// consistency proof, and answers Checkpoint with the latest checkpoint
// that met the quorum, cosignatures included. Everything else is the
// wrapped log's. Because checkpoints only ever come from it, proofs and
// receipts made against Checkpoint are against witnessed trees.
type Witnessed struct {
	merkle.Log
	policy merkle.Policy
	client *http.Client
	log    *slog.Logger

	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}

	mu        sync.Mutex
	published merkle.Checkpoint
	cosigned  map[string]uint64 // witness URL -> size it last cosigned
	grew      chan struct{}     // closed and replaced when published grows
}

var _ merkle.Log = (*Witnessed)(nil)

// WitnessedConfig carries what a Witnessed log needs.
type WitnessedConfig struct {
	Log merkle.Log
	// Policy names the log (its key must sign the wrapped log's
	// checkpoints), the witnesses with their submission URLs, and the
	// quorum a checkpoint needs before it is published.
	Policy merkle.Policy
	Client *http.Client
	Logger *slog.Logger
	// Interval is how often it looks for a new checkpoint besides after
	// each append. Default 1s.
	Interval time.Duration
}

// NewWitnessed starts cosigning cfg.Log's checkpoints. Close stops it.
func NewWitnessed(ctx context.Context, cfg WitnessedConfig) (*Witnessed, error) {
	if cfg.Log == nil || len(cfg.Policy.Logs) == 0 {
		return nil, errors.New("witness: a witnessed log needs a log and a policy naming it")
	}
	for _, w := range cfg.Policy.Witnesses {
		if w.URL == "" {
			return nil, fmt.Errorf("witness: policy witness %q has no URL to submit to", w.Name)
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	w := &Witnessed{
		Log: cfg.Log, policy: cfg.Policy, client: cfg.Client, log: cfg.Logger,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
		cosigned: map[string]uint64{}, grew: make(chan struct{}),
	}
	// Publish what can be published now, so a restart does not serve an
	// unwitnessed or empty checkpoint.
	if err := w.round(ctx); err != nil {
		w.log.Warn("first cosigning round", "err", err)
	}
	go w.run(cfg.Interval)
	return w, nil
}

// Append appends to the wrapped log and returns once a published
// checkpoint covers the leaves: they are durable and witnessed. If the
// witnesses do not reach the quorum before ctx ends, it returns ctx's
// error; the leaves are in the log, and a retry returns their indices.
func (w *Witnessed) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	idx, err := w.Log.Append(ctx, leaves)
	if err != nil || len(idx) == 0 {
		return idx, err
	}
	last := idx[0]
	for _, i := range idx {
		last = max(last, i)
	}
	for {
		w.mu.Lock()
		covered, grew := w.published.Note != nil && w.published.Size > last, w.grew
		w.mu.Unlock()
		if covered {
			return idx, nil
		}
		select {
		case w.kick <- struct{}{}:
		default:
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return nil, fmt.Errorf("leaves appended but not yet witnessed: %w", ctx.Err())
		case <-w.stop:
			return nil, merkle.ErrClosed
		}
	}
}

// Checkpoint returns the latest checkpoint that met the quorum. Before the
// first one, it returns an error.
func (w *Witnessed) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	if err := ctx.Err(); err != nil {
		return merkle.Checkpoint{}, err
	}
	select {
	case <-w.stop:
		return merkle.Checkpoint{}, merkle.ErrClosed
	default:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.published.Note == nil {
		return merkle.Checkpoint{}, errors.New("no checkpoint has met the witness quorum yet")
	}
	return w.published, nil
}

// Close stops cosigning. It does not close the wrapped log.
func (w *Witnessed) Close() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.stopped
	return nil
}

func (w *Witnessed) run(interval time.Duration) {
	defer close(w.stopped)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-w.stop; cancel() }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-tick.C:
		}
		if err := w.round(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("cosigning round", "err", err)
		}
	}
}

// round submits the wrapped log's latest checkpoint to every witness and
// publishes it if the cosignatures meet the quorum.
func (w *Witnessed) round(ctx context.Context) error {
	cp, err := w.Log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	done := w.published.Note != nil && w.published.Size >= cp.Size
	w.mu.Unlock()
	if done {
		return nil
	}
	type result struct {
		url  string
		note []byte
		err  error
	}
	results := make(chan result, len(w.policy.Witnesses))
	for _, wit := range w.policy.Witnesses {
		go func() {
			w.mu.Lock()
			old := w.cosigned[wit.URL]
			w.mu.Unlock()
			n, err := Cosign(ctx, w.client, wit.URL, cp, old, func(ctx context.Context, old uint64) ([]merkle.Hash, error) {
				return w.Log.ConsistencyProof(ctx, old, cp.Size)
			})
			results <- result{wit.URL, n, err}
		}()
	}
	signed := cp.Note
	var errs []error
	for range w.policy.Witnesses {
		r := <-results
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		w.mu.Lock()
		w.cosigned[r.url] = cp.Size
		w.mu.Unlock()
		// Cosign returned cp.Note followed by the witness's lines.
		signed = append(signed, r.note[len(cp.Note):]...)
	}
	got, err := w.policy.Verify(signed)
	if err != nil {
		return fmt.Errorf("checkpoint of size %d not published: %w (%v)", cp.Size, err, errors.Join(errs...))
	}
	got.Note = signed
	w.mu.Lock()
	if got.Size > w.published.Size || w.published.Note == nil {
		w.published = got
		close(w.grew)
		w.grew = make(chan struct{})
	}
	w.mu.Unlock()
	return nil
}

// Tile serves the wrapped log's C2SP tiles, if it serves them: tiles are
// immutable hashes, so serving them beyond the published checkpoint shows
// nothing that a witnessed checkpoint will not commit to.
func (w *Witnessed) Tile(ctx context.Context, level uint8, index uint64, width int) ([]byte, error) {
	tl, ok := w.Log.(merkle.TileLog)
	if !ok {
		return nil, errors.New("the witnessed log does not serve tiles")
	}
	return tl.Tile(ctx, level, index, width)
}

// EntryBundle serves the wrapped log's C2SP entry bundles, if it serves
// them.
func (w *Witnessed) EntryBundle(ctx context.Context, index uint64, width int) ([]byte, error) {
	tl, ok := w.Log.(merkle.TileLog)
	if !ok {
		return nil, errors.New("the witnessed log does not serve tiles")
	}
	return tl.EntryBundle(ctx, index, width)
}
