// Package datadir opens a provtrail data directory: the log and operator
// keys, the bbolt file holding the log and the index, and the Service over
// them. provd serves one; prov works on one directly when no server is
// given.
//
// A data directory holds:
//
//	origin        the log's checkpoint origin, fixed when the directory is made
//	log.key       the log's signer key (0600): signs checkpoints
//	operator.key  the operator's signer key (0600): signs enrollments, revocations, rulings
//	provtrail.db  the bbolt file: the log and the index (and the scan counts)
//	trillian-tree with the Trillian backend only: the tree the index was built from
//
// A mirror's directory (OpenMirror) holds no keys: provtrail.db (its copy
// of the origin's leaves, its index and scan counts), mirror (the
// origin's URL), trust.policy (the origin's keys it pinned) and
// mirror-checkpoint (the origin's latest checkpoint it verified).
//
// # Log backends
//
// The log is the embedded one in provtrail.db (the default), or a Trillian
// tree ([LogConfig]): then provtrail.db holds only this directory's index
// and scan counts, replayed from the tree, and every replica of the tree
// has a directory of its own holding copies of one origin, log.key and
// operator.key. Open refuses to point a directory at another tree, or an
// embedded log's directory at a tree: the index would describe another
// log. The tree itself is opened by the [TrillianOpener] the caller
// supplies (provd's records in the tree's description a fingerprint of
// the origin and the two verifier keys, and refuses a directory whose
// fingerprint differs: checkpoints over one tree must be signed by one
// key, and every replica must check enrollments against one operator key
// to reach the same state). The opener is injected so that only provd
// links the Trillian client and gRPC.
//
// # Index
//
// The index is in provtrail.db, or in a database that replicas share
// (provd's --index mysql://...), opened by the [IndexOpener] the caller
// supplies, so that a program that opens data directories only (prov)
// need not link the MySQL driver to do so. A shared index is
// bound to the log it is built from (the origin, the log key and the
// Trillian tree, see [LogName]): a replica of another log is refused.
package datadir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/tilelog"
	"github.com/provtrail/provtrail/merkle/witness"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

// DefaultOrigin is the origin of a new data directory when none is given.
const DefaultOrigin = "provtrail.localhost/log"

// Config says which directory to open and how.
type Config struct {
	Dir string
	// Origin is the checkpoint origin for a new directory. For an existing
	// one it must be empty or equal the stored origin.
	Origin string
	Logger *slog.Logger
	// Log says where the log lives; the zero value is the embedded log.
	Log LogConfig
	// PollInterval is how often the Service looks for leaves other
	// replicas appended; 0 is the Service's default (1s).
	PollInterval time.Duration
	// SaveInterval is how often the Service saves the index under writes;
	// 0 is the Service's default (1s).
	SaveInterval time.Duration
	// OpenIndex opens the index when it is kept outside the data
	// directory; nil keeps it in provtrail.db.
	OpenIndex IndexOpener
	// Witnesses, if set, is a C2SP tlog-policy naming witnesses (with
	// their submission URLs) and a quorum: the log then publishes only
	// checkpoints those witnesses cosigned (merkle/witness.Witnessed), and
	// the node's bundles are made for that policy. Its log lines, if any,
	// are ignored: the node's own log key is the policy's log.
	Witnesses *merkle.Policy
}

// A Node is an open data directory.
type Node struct {
	DB *bbolt.DB
	// Log is the embedded *boltlog.Log, or the log LogConfig.OpenTrillian
	// opened.
	Log merkle.Log
	// Store is the index: a *boltstore.Store in DB, or what
	// Config.OpenIndex opened.
	Store    provenance.Store
	Service  *provenance.Service
	Trust    provenance.Trust
	Operator note.Signer // the operator's signer
	// Backend describes the log: "bolt", "trillian tree ID at
	// host:port", or "mirror of URL".
	Backend string
	// Mirror is the Log of a mirror's directory (OpenMirror), nil
	// otherwise.
	Mirror *tilelog.Mirror

	closers    []func() error // the log's, in the order to call them
	closeIndex func() error   // Config.OpenIndex's, or nil
}

// An IndexOpener opens an index kept outside the data directory, built
// from the log named log (LogName), and returns it with the function that
// closes it.
type IndexOpener func(ctx context.Context, log string, logger *slog.Logger) (store provenance.Store, closeIndex func() error, err error)

// LogName names a log for an index shared by replicas, so that an index
// built from one log is not used with another: its origin, its log key,
// and the Trillian tree or "bolt" for the embedded log.
func LogName(trust provenance.Trust, lc LogConfig) string {
	where := BackendBolt
	if lc.Backend == BackendTrillian {
		where = fmt.Sprintf("%s tree %d", BackendTrillian, lc.TrillianTree)
	}
	return trust.Origin + " " + trust.LogKey + " " + where
}

// SameLog reports whether name, a LogName, names the log of trust's
// origin and log key, on whichever backend.
func SameLog(name string, trust provenance.Trust) bool {
	return strings.HasPrefix(name, trust.Origin+" "+trust.LogKey+" ")
}

// Open opens the data directory, creating it (with fresh keys) if it does
// not exist.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Dir == "" {
		return nil, errors.New("no data directory")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	if err := refuseMirror(cfg.Dir); err != nil {
		return nil, err
	}
	origin, err := loadOrigin(cfg.Dir, cfg.Origin)
	if err != nil {
		return nil, err
	}
	logSigner, logKey, err := merkle.LoadOrCreateKeyFile(filepath.Join(cfg.Dir, "log.key"), origin)
	if err != nil {
		return nil, err
	}
	opSigner, opKey, err := merkle.LoadOrCreateKeyFile(filepath.Join(cfg.Dir, "operator.key"), provenance.OperatorID)
	if err != nil {
		return nil, err
	}
	if err := bindBackend(cfg.Dir, cfg.Log); err != nil {
		return nil, err
	}
	db, err := boltlog.OpenDB(filepath.Join(cfg.Dir, "provtrail.db"))
	if err != nil {
		return nil, err
	}
	n := &Node{DB: db, Operator: opSigner, Trust: provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}}
	defer func() {
		if n.Service == nil {
			if n.closeIndex != nil {
				n.closeIndex()
			}
			n.closeLog()
			db.Close()
		}
	}()
	if err := n.openLog(ctx, cfg, logSigner); err != nil {
		return nil, err
	}
	if cfg.Witnesses != nil {
		if err := n.witness(ctx, *cfg.Witnesses, cfg.Logger); err != nil {
			return nil, err
		}
	}
	if cfg.OpenIndex != nil {
		if n.Store, n.closeIndex, err = cfg.OpenIndex(ctx, LogName(n.Trust, cfg.Log), cfg.Logger); err != nil {
			return nil, err
		}
	} else if n.Store, err = boltstore.Open(db); err != nil {
		return nil, err
	}
	svc, err := provenance.NewService(ctx, provenance.ServiceConfig{
		Log: n.Log, Store: n.Store, Trust: n.Trust, Logger: cfg.Logger, PollInterval: cfg.PollInterval, SaveInterval: cfg.SaveInterval,
	})
	if err != nil {
		return nil, err
	}
	n.Service = svc
	return n, nil
}

// openLog opens the log cfg.Log names.
func (n *Node) openLog(ctx context.Context, cfg Config, signer note.Signer) error {
	switch cfg.Log.Backend {
	case "", BackendBolt:
		l, err := boltlog.Open(ctx, boltlog.Config{DB: n.DB, Origin: n.Trust.Origin, Signer: signer, Logger: cfg.Logger, MaxWait: cfg.Log.Linger})
		if err != nil {
			return err
		}
		n.Log, n.Backend, n.closers = l, BackendBolt, []func() error{l.Close}
		return nil
	case BackendTrillian:
		lc := cfg.Log
		if lc.OpenTrillian == nil {
			return errors.New("the Trillian backend is served by provd only")
		}
		if lc.TrillianAddr == "" || lc.TrillianTree == 0 {
			return errors.New("the Trillian backend needs the log server's address and a tree ID")
		}
		l, closeLog, err := lc.OpenTrillian(ctx, lc, n.Trust, signer, cfg.Logger)
		if err != nil {
			return err
		}
		n.Log, n.closers = l, []func() error{closeLog}
		n.Backend = fmt.Sprintf("%s tree %d at %s", BackendTrillian, lc.TrillianTree, lc.TrillianAddr)
		return nil
	}
	return fmt.Errorf("log backend %q: want %q or %q", cfg.Log.Backend, BackendBolt, BackendTrillian)
}

// witness wraps the node's log so that it publishes only checkpoints with
// the policy's witness quorum.
func (n *Node) witness(ctx context.Context, p merkle.Policy, logger *slog.Logger) error {
	v, err := note.NewVerifier(n.Trust.LogKey)
	if err != nil {
		return err
	}
	p.Logs = []merkle.PolicyLog{{Key: n.Trust.LogKey, Verifier: v}}
	if p.Quorum == "none" || len(p.Witnesses) == 0 {
		return errors.New("witness policy: it names no witnesses or its quorum is none")
	}
	w, err := witness.NewWitnessed(ctx, witness.WitnessedConfig{Log: n.Log, Policy: p, Logger: logger})
	if err != nil {
		return err
	}
	n.Log = w
	n.closers = append([]func() error{w.Close}, n.closers...)
	n.Trust.Policy = &p
	return nil
}

func (n *Node) closeLog() error {
	var errs []error
	for _, c := range n.closers {
		errs = append(errs, c())
	}
	n.closers = nil
	return errors.Join(errs...)
}

// Close closes the Service (saving the index), the index if it is kept
// elsewhere, the log and the database.
func (n *Node) Close() error {
	errs := []error{n.Service.Close()}
	if n.closeIndex != nil {
		errs = append(errs, n.closeIndex())
	}
	return errors.Join(append(errs, n.closeLog(), n.DB.Close())...)
}

// loadOrigin returns the directory's origin, recording want as the origin
// of a new directory.
func loadOrigin(dir, want string) (string, error) {
	path := filepath.Join(dir, "origin")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if want == "" {
			want = DefaultOrigin
		}
		if strings.ContainsAny(want, " +\n\t") {
			return "", fmt.Errorf("origin %q: must not contain spaces or '+'", want)
		}
		if err := os.WriteFile(path, []byte(want+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("record origin: %w", err)
		}
		return want, nil
	case err != nil:
		return "", fmt.Errorf("read origin: %w", err)
	}
	have := strings.TrimSpace(string(b))
	if want != "" && want != have {
		return "", fmt.Errorf("data directory %s holds the log %q, not %q: a log's origin cannot change", dir, have, want)
	}
	return have, nil
}
