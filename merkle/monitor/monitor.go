// Package monitor follows a transparency log from outside: it fetches the
// log's checkpoint, checks its signature (and witness quorum, with a
// policy), and proves from the log's C2SP tlog-tiles that the new tree
// extends the last one it verified. A rollback, a fork or a bad signature
// is an error that says which.
//
// The consistency proof is computed locally from tiles fetched over HTTP
// and authenticated against the new checkpoint's root by x/mod's
// tlog.TileHashReader, so the monitor trusts nothing the log says beyond
// its signatures.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrInconsistent is matched by the errors Check returns for a log that
// misbehaved: a rollback, a fork, or a checkpoint that does not extend the
// last verified one.
var ErrInconsistent = errors.New("log is inconsistent")

// Config says which log to follow and where to keep what was verified.
type Config struct {
	// URL is the log's tlog-tiles prefix: URL/checkpoint and URL/tile/...
	URL string
	// Policy decides which checkpoints are valid (log key, witness quorum).
	Policy merkle.Policy
	// StatePath keeps the last verified checkpoint; it is created on the
	// first Check.
	StatePath string
	Client    *http.Client
}

// A Result says what one Check saw.
type Result struct {
	Old, New merkle.Checkpoint // Old is zero on the first check
}

// state is the last verified checkpoint, as saved.
type state struct {
	Checkpoint []byte `json:"checkpoint"`
}

// Check fetches the log's checkpoint, verifies it, proves it consistent
// with the last verified one, and records it.
func Check(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	base := strings.TrimSuffix(cfg.URL, "/")
	msg, err := get(ctx, cfg.Client, base+"/checkpoint")
	if err != nil {
		return Result{}, err
	}
	cp, err := cfg.Policy.Verify(msg)
	if err != nil {
		return Result{}, fmt.Errorf("checkpoint from %s: %w", base, err)
	}
	res := Result{New: cp}
	b, err := os.ReadFile(cfg.StatePath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return res, save(cfg.StatePath, cp)
	case err != nil:
		return Result{}, fmt.Errorf("monitor state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return Result{}, fmt.Errorf("monitor state %s is corrupt: %w", cfg.StatePath, err)
	}
	old, err := cfg.Policy.Verify(st.Checkpoint)
	if err != nil {
		return Result{}, fmt.Errorf("monitor state %s: %w", cfg.StatePath, err)
	}
	res.Old = old
	switch {
	case old.Origin != cp.Origin:
		return res, fmt.Errorf("%w: origin changed from %q to %q", ErrInconsistent, old.Origin, cp.Origin)
	case cp.Size < old.Size:
		return res, fmt.Errorf("%w: rollback: the log now shows size %d, after size %d was verified", ErrInconsistent, cp.Size, old.Size)
	case cp.Size == old.Size && cp.Root != old.Root:
		return res, fmt.Errorf("%w: fork: two different trees of size %d (%v and %v)", ErrInconsistent, cp.Size, old.Root, cp.Root)
	case cp.Size == old.Size:
		return res, nil
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	hr := tlog.TileHashReader(tree, &tileReader{ctx: ctx, client: cfg.Client, base: base})
	if old.Size > 0 {
		p, err := tlog.ProveTree(tree.N, int64(old.Size), hr)
		if err != nil {
			return res, fmt.Errorf("prove size %d from the log's tiles: %w", old.Size, err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, int64(old.Size), tlog.Hash(old.Root)); err != nil {
			return res, fmt.Errorf("%w: fork: the tree of size %d does not extend the verified tree of size %d: %v", ErrInconsistent, cp.Size, old.Size, err)
		}
	}
	return res, save(cfg.StatePath, cp)
}

func save(path string, cp merkle.Checkpoint) error {
	b, err := json.Marshal(state{Checkpoint: cp.Note})
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save monitor state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save monitor state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save monitor state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save monitor state: %w", err)
	}
	return os.Rename(tmp, path)
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

// tileReader fetches C2SP tiles for tlog.TileHashReader, which checks
// them against the tree's root.
type tileReader struct {
	ctx    context.Context
	client *http.Client
	base   string
}

func (r *tileReader) Height() int { return merkle.TileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		// x/mod names tiles tile/<H>/<L>/<N>[.p/<W>]; C2SP drops the height.
		path := strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", merkle.TileHeight), "tile/", 1)
		b, err := get(r.ctx, r.client, r.base+"/"+path)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
