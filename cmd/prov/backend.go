package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/provenance"
	bolterrors "go.etcd.io/bbolt/errors"
)

// backend is what the verbs need of a provtrail log: submit a signed
// event, look up items and actors, get a proof bundle. The in-process
// Service of a data directory implements it (localBackend), and so does a
// provd reached over its JSON API with --server (httpBackend, remote.go),
// so the verbs are the same either way.
//
// Errors match the provenance sentinels (provenance.ErrNotFound, a
// *provenance.RuleError for a refused event, ...).
type backend interface {
	// Submit appends a signed event and returns its receipt.
	Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error)
	// SubmitBatch submits signed events at once, each accepted or refused
	// on its own (provenance.Service.SubmitBatch), and returns one result
	// per event; an error says the batch as a whole was not taken.
	SubmitBatch(ctx context.Context, leaves [][]byte) ([]provenance.BatchResult, error)
	// Item returns an item's state and history as the log has it.
	Item(ctx context.Context, id provenance.ItemID) (provenance.ItemView, error)
	// Bundle returns the proof bundle of an item.
	Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error)
	// Actor returns an enrolled actor.
	Actor(ctx context.Context, id string) (provenance.ActorState, error)
	// Trust returns the origin and keys the log says it has. A verifier
	// pins them out of band; prov trusts them only for a local data
	// directory.
	Trust(ctx context.Context) (provenance.Trust, error)
	Close() error
}

// conn holds the flags that say which log a verb talks to, and opens it.
type conn struct {
	*env
	dataDir string
	// create: open a data directory that does not exist yet, with fresh
	// keys, and this origin.
	create bool
	origin string
	// server is the URL of a provd to use instead of the data directory.
	server string
	// pins are the keys the user pinned, if any: the HTTP backend checks
	// receipts and histories with them.
	pins *provenance.Trust
}

// open opens the backend the flags name: a provd with --server, else the
// data directory.
func (c *conn) open(ctx context.Context) (backend, error) {
	if c.server != "" {
		b, err := newHTTPBackend(c.server, c.pins)
		if err != nil {
			return nil, err
		}
		b.notes = c.stderr
		return b, nil
	}
	return openLocal(ctx, c.dataDir, c.create, c.origin)
}

// operatorKeyPath is where the operator's signer key is when no --key is
// given.
func (c *conn) operatorKeyPath() string {
	return filepath.Join(c.dataDir, "operator.key")
}

// localBackend is a data directory opened in this process.
type localBackend struct {
	node *datadir.Node
}

var _ backend = (*localBackend)(nil)

// errNoDataDir: --data names no data directory.
var errNoDataDir = errors.New("no data directory")

func openLocal(ctx context.Context, dir string, create bool, origin string) (*localBackend, error) {
	if !create {
		if _, err := os.Stat(filepath.Join(dir, "origin")); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s (\"prov keys --data %s\" makes one)", errNoDataDir, dir, dir)
		}
	}
	n, err := datadir.Open(ctx, datadir.Config{Dir: dir, Origin: origin})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("data directory %s is in use by another process (is provd running on it?)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open data directory %s: %w", dir, err)
	}
	return &localBackend{node: n}, nil
}

func (b *localBackend) Submit(ctx context.Context, leaf []byte) (provenance.Receipt, error) {
	return b.node.Service.Submit(ctx, leaf)
}

// localBatchWorkers is how many items of a batch the in-process Service
// checks and appends at once.
const localBatchWorkers = 64

func (b *localBackend) SubmitBatch(ctx context.Context, leaves [][]byte) ([]provenance.BatchResult, error) {
	return b.node.Service.SubmitBatch(ctx, leaves, localBatchWorkers, nil), nil
}

func (b *localBackend) Item(ctx context.Context, id provenance.ItemID) (provenance.ItemView, error) {
	return b.node.Service.Item(ctx, id)
}

func (b *localBackend) Bundle(ctx context.Context, id provenance.ItemID) ([]byte, error) {
	return b.node.Service.Bundle(ctx, id)
}

func (b *localBackend) Actor(ctx context.Context, id string) (provenance.ActorState, error) {
	return b.node.Service.Actor(ctx, id)
}

func (b *localBackend) Trust(ctx context.Context) (provenance.Trust, error) {
	return b.node.Trust, nil
}

func (b *localBackend) Close() error { return b.node.Close() }

// rebuild replays the whole log into an empty index and returns how many
// log positions it replayed. The backend is closed afterwards.
func (b *localBackend) rebuild(ctx context.Context) (uint64, error) {
	n := b.node
	// Stop the open Service first: the rebuild makes its own over the same
	// log and index.
	if err := n.Service.Close(); err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	cp, err := n.Log.Checkpoint(ctx)
	if err != nil {
		return 0, fmt.Errorf("rebuild: %w", err)
	}
	if err := provenance.Rebuild(ctx, provenance.ServiceConfig{Log: n.Log, Store: n.Store, Trust: n.Trust}); err != nil {
		return 0, err
	}
	return cp.Size, nil
}
