package tilelog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sync/errgroup"
)

// Errors of a Client and of a Mirror. Callers test for them with
// errors.Is.
var (
	// ErrUnavailable is matched by the errors of an origin that did not
	// answer, answered with an HTTP error, or answered with a body that is
	// not well formed (a truncated tile, a checkpoint that is not a signed
	// note, ...): nothing it says about the log, so a Mirror tries again
	// later.
	ErrUnavailable = errors.New("origin unavailable")
	// ErrInconsistent is matched by the errors that show the origin
	// serving a history that contradicts what was verified: a checkpoint
	// not signed by the pinned log key or with a bad signature by it, a
	// tree that shrank or forked, a tile or an entry that does not match
	// the signed root. A Mirror stops following on it.
	ErrInconsistent = errors.New("origin log is inconsistent")
)

// maxCheckpointSize bounds a checkpoint body: a checkpoint with a few
// dozen cosignatures is a few KiB.
const maxCheckpointSize = 64 << 10

// A Client reads a remote log through the C2SP tlog-tiles API and
// verifies everything it returns: checkpoints against the pinned log key
// (and witness policy), consistency and entries against verified
// checkpoints, from tiles it authenticates with x/mod's
// tlog.TileHashReader. It trusts nothing the origin says beyond its
// signatures.
type Client struct {
	base     string
	origin   string
	verifier note.Verifier
	policy   *merkle.Policy
	http     *http.Client
}

// ClientConfig says which log to read and how to check it.
type ClientConfig struct {
	// URL is the origin's tlog-tiles prefix: URL/checkpoint and
	// URL/tile/... (a provd's base URL).
	URL string
	// LogKey is the pinned verifier key of the log; its name is the
	// origin.
	LogKey string
	// Policy, if set, is a C2SP tlog-policy a checkpoint must meet too:
	// the witness cosignatures its quorum requires.
	Policy *merkle.Policy
	// HTTP makes the requests; nil is a client with a 30s timeout.
	HTTP *http.Client
}

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := checkURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("origin URL %q: %w", cfg.URL, err)
	}
	v, err := note.NewVerifier(cfg.LogKey)
	if err != nil {
		return nil, fmt.Errorf("log key: %w", err)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: strings.TrimRight(cfg.URL, "/"), origin: v.Name(), verifier: v, policy: cfg.Policy, http: cfg.HTTP}, nil
}

// URL returns the origin's base URL.
func (c *Client) URL() string { return c.base }

// Origin returns the log's origin, the name of its key.
func (c *Client) Origin() string { return c.origin }

// Checkpoint fetches the origin's latest checkpoint and verifies it.
func (c *Client) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	msg, err := c.get(ctx, "checkpoint", maxCheckpointSize)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	cp, err := c.Verify(msg)
	if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("checkpoint from %s: %w", c.base, err)
	}
	return cp, nil
}

// Verify checks that msg is a checkpoint of the log, signed by its key
// (and meeting the policy's quorum, if there is one), and returns it with
// msg as its Note, cosignatures included. A note that is not well formed
// matches ErrUnavailable; one not signed by the log key, or with a bad
// signature by it, or signed but not a canonical checkpoint, matches
// ErrInconsistent; one that lacks its witness quorum matches
// ErrUnavailable (witnesses may be late).
func (c *Client) Verify(msg []byte) (merkle.Checkpoint, error) {
	var bad *note.InvalidSignatureError
	var unverified *note.UnverifiedNoteError
	if _, err := note.Open(msg, note.VerifierList(c.verifier)); errors.As(err, &bad) {
		return merkle.Checkpoint{}, fmt.Errorf("%w: a signature by the log key %s does not verify", ErrInconsistent, bad.Name)
	} else if errors.As(err, &unverified) {
		return merkle.Checkpoint{}, fmt.Errorf("%w: not signed by the pinned log key %s", ErrInconsistent, c.verifier.Name())
	} else if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("%w: not a signed note: %v", ErrUnavailable, err)
	}
	cp, err := merkle.ParseCheckpoint(msg, c.origin, c.verifier)
	if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("%w: the log key signed it, but %v", ErrInconsistent, err)
	}
	if c.policy != nil {
		if _, err := c.policy.Verify(msg); err != nil {
			return merkle.Checkpoint{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return cp, nil
}

// Consistent proves, from the origin's tiles authenticated against new's
// root, that the tree of new extends the tree of old. Both checkpoints
// must be verified already. A tree that shrank or forked matches
// ErrInconsistent.
func (c *Client) Consistent(ctx context.Context, old, new merkle.Checkpoint) error {
	switch {
	case new.Size < old.Size:
		return fmt.Errorf("%w: the tree shrank from size %d to %d", ErrInconsistent, old.Size, new.Size)
	case new.Size == old.Size && new.Root != old.Root:
		return fmt.Errorf("%w: fork: two trees of size %d, roots %v and %v", ErrInconsistent, new.Size, old.Root, new.Root)
	case new.Size == old.Size || old.Size == 0:
		return nil
	}
	tr := c.tiles(ctx)
	hr := tlog.TileHashReader(tlog.Tree{N: int64(new.Size), Hash: tlog.Hash(new.Root)}, tr)
	p, err := tlog.ProveTree(int64(new.Size), int64(old.Size), hr)
	if err != nil {
		return tr.classify(fmt.Errorf("prove size %d in size %d from the tiles: %w", old.Size, new.Size, err))
	}
	if err := tlog.CheckTree(p, int64(new.Size), tlog.Hash(new.Root), int64(old.Size), tlog.Hash(old.Root)); err != nil {
		return fmt.Errorf("%w: fork: the tree of size %d does not extend the verified tree of size %d: %v", ErrInconsistent, new.Size, old.Size, err)
	}
	return nil
}

// Entries returns the leaves [start, end) of the tree of cp, a verified
// checkpoint, each checked against the leaf hash the tiles authenticated
// against cp's root. A leaf that does not match matches ErrInconsistent.
func (c *Client) Entries(ctx context.Context, cp merkle.Checkpoint, start, end uint64) ([][]byte, error) {
	if start > end || end > cp.Size {
		return nil, fmt.Errorf("entries [%d, %d) of a tree of size %d: out of range", start, end, cp.Size)
	}
	if start == end {
		return nil, nil
	}
	tr := c.tiles(ctx)
	hr := tlog.TileHashReader(tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}, tr)
	indexes := make([]int64, 0, end-start)
	for i := start; i < end; i++ {
		indexes = append(indexes, tlog.StoredHashIndex(0, int64(i)))
	}
	hashes, err := hr.ReadHashes(indexes)
	if err != nil {
		return nil, tr.classify(fmt.Errorf("read the leaf hashes [%d, %d) from the tiles: %w", start, end, err))
	}
	// The entry bundles holding [start, end), each as wide as cp's tree
	// holds it.
	first, last := start/merkle.TileWidth, (end-1)/merkle.TileWidth
	bundles := make([][][]byte, last-first+1)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchers)
	for n := first; n <= last; n++ {
		g.Go(func() error {
			w := int(min(cp.Size-n*merkle.TileWidth, merkle.TileWidth))
			b, err := c.entryBundle(gctx, n, w)
			bundles[n-first] = b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, end-start)
	for i := start; i < end; i++ {
		leaf := bundles[i/merkle.TileWidth-first][i%merkle.TileWidth]
		if merkle.LeafHash(leaf) != merkle.Hash(hashes[i-start]) {
			return nil, fmt.Errorf("%w: entry %d in the origin's entry bundle does not hash to the leaf hash the checkpoint of size %d commits to", ErrInconsistent, i, cp.Size)
		}
		out = append(out, leaf)
	}
	return out, nil
}

// fetchers is how many tiles or entry bundles a Client fetches at once.
const fetchers = 4

// entryBundle fetches the entry bundle n, w entries wide, and splits it
// into its leaves.
func (c *Client) entryBundle(ctx context.Context, n uint64, w int) ([][]byte, error) {
	path := strings.Replace(tlog.Tile{H: merkle.TileHeight, L: -1, N: int64(n), W: w}.Path(), fmt.Sprintf("tile/%d/data/", merkle.TileHeight), "tile/entries/", 1)
	b, err := c.get(ctx, path, w*(2+merkle.MaxLeafSize))
	if err != nil {
		return nil, err
	}
	leaves, err := parseEntryBundle(b, w)
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", ErrUnavailable, c.base, path, err)
	}
	return leaves, nil
}

// parseEntryBundle splits a C2SP entry bundle of w entries: each a
// big-endian uint16 length and that many bytes, nothing after the last.
func parseEntryBundle(b []byte, w int) ([][]byte, error) {
	if w < 1 || w > merkle.TileWidth {
		return nil, fmt.Errorf("a bundle of %d entries: want 1 to %d", w, merkle.TileWidth)
	}
	leaves := make([][]byte, 0, w)
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("entry %d: truncated length", len(leaves))
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return nil, fmt.Errorf("entry %d: %d bytes, of %d announced", len(leaves), len(b)-2, n)
		}
		if len(leaves) == w {
			return nil, fmt.Errorf("more than the %d entries the path names", w)
		}
		leaves = append(leaves, b[2:2+n:2+n])
		b = b[2+n:]
	}
	if len(leaves) != w {
		return nil, fmt.Errorf("%d entries, want %d", len(leaves), w)
	}
	return leaves, nil
}

// get fetches base/path, at most limit bytes. Any failure matches
// ErrUnavailable.
func (c *Client) get(ctx context.Context, path string, limit int) ([]byte, error) {
	addr := c.base + "/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, addr, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "tile/") {
			hint = " (the origin serves no tiles at this URL: is it a provd's base URL?)"
		}
		return nil, fmt.Errorf("%w: GET %s: %s%s", ErrUnavailable, addr, resp.Status, hint)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: GET %s: %v", ErrUnavailable, addr, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: GET %s: body larger than %d bytes", ErrUnavailable, addr, limit)
	}
	return b, nil
}

// tiles returns a tlog.TileReader over the origin's hash tiles for one
// operation.
func (c *Client) tiles(ctx context.Context) *tileReader {
	return &tileReader{ctx: ctx, c: c, cache: map[tlog.Tile][]byte{}}
}

// tileReader fetches C2SP hash tiles for tlog.TileHashReader, which
// authenticates them against a tree's root. It keeps the tiles of one
// operation that were authenticated, so that a tile that several reads
// need is fetched once.
type tileReader struct {
	ctx context.Context
	c   *Client

	mu       sync.Mutex
	cache    map[tlog.Tile][]byte
	fetchErr error // the first error fetching a tile, or one not well formed
}

func (r *tileReader) Height() int { return merkle.TileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	g, ctx := errgroup.WithContext(r.ctx)
	g.SetLimit(fetchers)
	for i, t := range tiles {
		r.mu.Lock()
		b, ok := r.cache[t]
		r.mu.Unlock()
		if ok {
			out[i] = b
			continue
		}
		g.Go(func() error {
			// x/mod names tiles tile/<H>/<L>/<N>[.p/<W>]; C2SP drops the height.
			path := strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", merkle.TileHeight), "tile/", 1)
			b, err := r.c.get(ctx, path, t.W*merkle.HashSize)
			if err == nil && len(b) != t.W*merkle.HashSize {
				err = fmt.Errorf("%w: %s/%s: %d bytes, want %d hashes of %d", ErrUnavailable, r.c.base, path, len(b), t.W, merkle.HashSize)
			}
			out[i] = b
			return err
		})
	}
	if err := g.Wait(); err != nil {
		r.mu.Lock()
		if r.fetchErr == nil {
			r.fetchErr = err
		}
		r.mu.Unlock()
		return nil, err
	}
	return out, nil
}

func (r *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, t := range tiles {
		r.cache[t] = data[i]
	}
}

// classify returns err as it is if fetching a tile failed (it matches
// ErrUnavailable or the context's error). Any other error of
// tlog.TileHashReader is tiles of the right size that do not hash to the
// signed root: the origin's tiles contradict its checkpoint.
func (r *tileReader) classify(err error) error {
	r.mu.Lock()
	fetchErr := r.fetchErr
	r.mu.Unlock()
	if fetchErr != nil {
		return err
	}
	return fmt.Errorf("%w: %v", ErrInconsistent, err)
}

// checkURL checks an origin's base URL: http(s) with a host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http:// or https:// URL")
	case u.Host == "":
		return errors.New("no host")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("want no query or fragment")
	}
	return nil
}
