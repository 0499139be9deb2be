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
//	provtrail.db  the bbolt file: the log and the index
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

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
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
}

// A Node is an open data directory.
type Node struct {
	DB       *bbolt.DB
	Log      *boltlog.Log
	Store    *boltstore.Store
	Service  *provenance.Service
	Trust    provenance.Trust
	Operator note.Signer // the operator's signer
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
	db, err := boltlog.OpenDB(filepath.Join(cfg.Dir, "provtrail.db"))
	if err != nil {
		return nil, err
	}
	n := &Node{DB: db, Operator: opSigner, Trust: provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}}
	if n.Log, err = boltlog.Open(ctx, boltlog.Config{DB: db, Origin: origin, Signer: logSigner, Logger: cfg.Logger}); err != nil {
		db.Close()
		return nil, err
	}
	if n.Store, err = boltstore.Open(db); err != nil {
		n.Log.Close()
		db.Close()
		return nil, err
	}
	n.Service, err = provenance.NewService(ctx, provenance.ServiceConfig{Log: n.Log, Store: n.Store, Trust: n.Trust, Logger: cfg.Logger})
	if err != nil {
		n.Log.Close()
		db.Close()
		return nil, err
	}
	return n, nil
}

// Close closes the Service (saving the index), the log and the database.
func (n *Node) Close() error {
	return errors.Join(n.Service.Close(), n.Log.Close(), n.DB.Close())
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
