package datadir

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/tilelog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"golang.org/x/mod/sumdb/note"
)

// The files of a mirror's data directory, besides provtrail.db (its
// copy of the origin's leaves, its index and its scan counts).
const (
	// mirrorFile records the URL of the origin a directory mirrors: a
	// mirror's directory holds no keys of its own, and neither Open nor a
	// mirror of another origin may use it.
	mirrorFile = "mirror"
	// trustFile pins the origin's log and operator keys, as a trust
	// policy file (provenance.ParseTrustPolicy).
	trustFile = "trust.policy"
	// mirrorCheckpointFile keeps the origin's latest verified
	// checkpoint (tilelog.Config.StatePath).
	mirrorCheckpointFile = "mirror-checkpoint"
)

// MirrorConfig says which log a mirror's data directory follows.
type MirrorConfig struct {
	Dir string
	// URL is the origin's base URL: a provd serving /keys, /checkpoint
	// and the C2SP tiles.
	URL string
	// Trust pins the origin's keys (from a trust policy file). nil pins
	// what the origin's /keys says on the first start, and what the
	// directory pinned after that.
	Trust  *provenance.Trust
	Logger *slog.Logger
	// PollInterval is how often the origin's checkpoint is fetched, and
	// the index looks for what the mirror verified; 0 is 1s.
	PollInterval time.Duration
	// HTTP makes the requests to the origin; nil is a client with a
	// 30s timeout.
	HTTP *http.Client
}

// OpenMirror opens (or makes) the data directory of a mirror of the log
// served at cfg.URL: its copy of the log, a tilelog.Mirror that follows
// the origin and verifies everything, and a Service that builds the
// index from what was verified. The Node's Log is the Mirror (read-only),
// and its Operator is nil: a mirror signs nothing.
func OpenMirror(ctx context.Context, cfg MirrorConfig) (*Node, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	url := strings.TrimRight(cfg.URL, "/")
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	bound, err := checkMirrorDir(cfg.Dir, url)
	if err != nil {
		return nil, err
	}
	trust, err := pinTrust(ctx, cfg, url)
	if err != nil {
		return nil, err
	}
	// Recorded once the keys are pinned, so that a first start with a
	// mistyped URL leaves the directory free for the right one.
	if !bound {
		if err := writeFileSync(filepath.Join(cfg.Dir, mirrorFile), []byte(url+"\n")); err != nil {
			return nil, fmt.Errorf("record the mirrored origin: %w", err)
		}
	}
	client, err := tilelog.NewClient(tilelog.ClientConfig{URL: url, LogKey: trust.LogKey, Policy: trust.Policy, HTTP: cfg.HTTP})
	if err != nil {
		return nil, err
	}
	// The local log is storage only: its own checkpoints are never
	// published, so a key made for this run signs them.
	skey, _, err := merkle.GenerateKey(trust.Origin)
	if err != nil {
		return nil, err
	}
	throwaway, err := note.NewSigner(skey)
	if err != nil {
		return nil, err
	}
	db, err := boltlog.OpenDB(filepath.Join(cfg.Dir, "provtrail.db"))
	if err != nil {
		return nil, err
	}
	n := &Node{DB: db, Trust: trust, Backend: "mirror of " + url}
	defer func() {
		if n.Service == nil {
			n.closeLog()
			db.Close()
		}
	}()
	local, err := boltlog.Open(ctx, boltlog.Config{DB: db, Origin: trust.Origin, Signer: throwaway, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	n.closers = []func() error{local.Close}
	m, err := tilelog.Open(ctx, tilelog.Config{Client: client, Local: local, StatePath: filepath.Join(cfg.Dir, mirrorCheckpointFile),
		Logger: cfg.Logger, Interval: cfg.PollInterval})
	if err != nil {
		return nil, err
	}
	n.Log, n.Mirror = m, m
	n.closers = append([]func() error{m.Close}, n.closers...)
	if n.Store, err = boltstore.Open(db); err != nil {
		return nil, err
	}
	svc, err := provenance.NewService(ctx, provenance.ServiceConfig{
		Log: m, Store: n.Store, Trust: trust, Logger: cfg.Logger, PollInterval: cfg.PollInterval,
	})
	if err != nil {
		return nil, err
	}
	n.Service = svc
	return n, nil
}

// checkMirrorDir refuses a directory that holds a log of its own or
// mirrors another origin, and reports whether it mirrors url already.
func checkMirrorDir(dir, url string) (bound bool, err error) {
	path := filepath.Join(dir, mirrorFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		for _, f := range []string{"log.key", "origin", treeFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return false, fmt.Errorf("data directory %s holds a log of its own (%s); a mirror needs a new directory", dir, f)
			}
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read the mirrored origin: %w", err)
	}
	if have := strings.TrimSpace(string(b)); have != url {
		return false, fmt.Errorf("data directory %s mirrors %s, not %s: use a new directory for another origin (or edit %s if the origin moved)", dir, have, url, path)
	}
	return true, nil
}

// refuseMirror refuses to open a mirror's directory as a log of its own.
func refuseMirror(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, mirrorFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("read the mirrored origin: %w", err)
	}
	return fmt.Errorf("data directory %s is a read-only mirror of %s: start it with provd --mirror %s", dir, strings.TrimSpace(string(b)), strings.TrimSpace(string(b)))
}

// pinTrust returns the keys the mirror checks the origin against: those
// the directory pinned, which cfg.Trust, if given, must equal; else
// cfg.Trust, pinned now; else the origin's /keys, pinned on this first
// use with a warning.
func pinTrust(ctx context.Context, cfg MirrorConfig, url string) (provenance.Trust, error) {
	path := filepath.Join(cfg.Dir, trustFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		pinned, err := provenance.ParseTrustPolicy(b)
		if err != nil {
			return provenance.Trust{}, fmt.Errorf("pinned keys %s: %w", path, err)
		}
		if cfg.Trust != nil && provenance.FormatTrustPolicy(*cfg.Trust) != provenance.FormatTrustPolicy(pinned) {
			return provenance.Trust{}, fmt.Errorf("the trust policy given differs from the keys this mirror pinned in %s (log key %s, operator key %s): a mirror follows one log; use a new directory", path, pinned.LogKey, pinned.OperatorKey)
		}
		return pinned, nil
	case !errors.Is(err, fs.ErrNotExist):
		return provenance.Trust{}, fmt.Errorf("pinned keys: %w", err)
	}
	trust := cfg.Trust
	if trust == nil {
		t, err := fetchKeys(ctx, cfg.HTTP, url)
		if err != nil {
			return provenance.Trust{}, fmt.Errorf("pin the origin's keys on first use: %w (or give them with a trust policy file)", err)
		}
		cfg.Logger.Warn("mirror: pinned the origin's keys on first use, as the origin served them; check them with the origin's operator, or start with a trust policy file",
			"origin_url", url, "origin", t.Origin, "log_key", t.LogKey, "operator_key", t.OperatorKey, "file", path)
		trust = &t
	}
	if err := writeFileSync(path, []byte(provenance.FormatTrustPolicy(*trust))); err != nil {
		return provenance.Trust{}, fmt.Errorf("pin the origin's keys: %w", err)
	}
	return *trust, nil
}

// fetchKeys reads what the origin serves at /keys and checks that it is a
// pair of verifier keys, the log's named for its origin.
func fetchKeys(ctx context.Context, client *http.Client, url string) (provenance.Trust, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/keys", nil)
	if err != nil {
		return provenance.Trust{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return provenance.Trust{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: %w", url, err)
	}
	var keys struct {
		Origin      string `json:"origin"`
		LogKey      string `json:"log_key"`
		OperatorKey string `json:"operator_key"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&keys); err != nil {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: not the keys JSON: %w", url, err)
	}
	lv, err := note.NewVerifier(keys.LogKey)
	if err != nil {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: log key: %w", url, err)
	}
	if lv.Name() != keys.Origin {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: the log key is named %q, not the origin %q", url, lv.Name(), keys.Origin)
	}
	if _, err := note.NewVerifier(keys.OperatorKey); err != nil {
		return provenance.Trust{}, fmt.Errorf("GET %s/keys: operator key: %w", url, err)
	}
	return provenance.Trust{Origin: keys.Origin, LogKey: keys.LogKey, OperatorKey: keys.OperatorKey}, nil
}

// writeFileSync replaces path with b durably: a temporary file, synced,
// renamed over path, then the directory synced.
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
