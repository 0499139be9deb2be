package datadir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// The log backends.
const (
	BackendBolt     = "bolt"
	BackendTrillian = "trillian"
)

// LogConfig says where a data directory's log lives.
type LogConfig struct {
	// Backend is BackendBolt (or "") for the embedded log, or
	// BackendTrillian.
	Backend string
	// TrillianAddr is the gRPC address (host:port) of a
	// trillian_log_server, reached without TLS: run it on loopback or a
	// private network.
	TrillianAddr string
	// TrillianTree is the ID of a LOG tree (createtree --tree_type=LOG).
	TrillianTree int64
	// Linger is the embedded log's boltlog.Config.MaxWait: under
	// concurrent writes, how long a commit may wait for more. Fewer,
	// larger commits leave more CPU for checking signatures; a lone
	// writer never waits. 0 commits at once.
	Linger time.Duration
	// OpenTrillian opens the tree for BackendTrillian, which is refused
	// without it. provd supplies it, so that the Trillian client and gRPC
	// are linked into the server only, not into prov or provload, which
	// open data directories on the embedded log.
	OpenTrillian TrillianOpener
}

// A TrillianOpener connects to the Trillian log server lc names, checks
// that the tree is the log of trust's origin and keys, and opens it as a
// log whose checkpoints signer signs. closeLog releases the log and the
// connection.
type TrillianOpener func(ctx context.Context, lc LogConfig, trust provenance.Trust, signer note.Signer, logger *slog.Logger) (l merkle.Log, closeLog func() error, err error)

// treeFile records, in a directory used with Trillian, the tree its index
// was built from.
const treeFile = "trillian-tree"

// bindBackend refuses to open a directory's index against a log other
// than the one it was built from, and records the tree of a new Trillian
// replica.
func bindBackend(dir string, lc LogConfig) error {
	path := filepath.Join(dir, treeFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if lc.Backend != BackendTrillian {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dir, "provtrail.db")); err == nil {
			return fmt.Errorf("data directory %s holds an embedded log and its index; a Trillian replica needs a new directory holding copies of origin, log.key and operator.key", dir)
		}
		if err := os.WriteFile(path, []byte(strconv.FormatInt(lc.TrillianTree, 10)+"\n"), 0o600); err != nil {
			return fmt.Errorf("record the Trillian tree: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read the Trillian tree: %w", err)
	}
	have := strings.TrimSpace(string(b))
	switch {
	case lc.Backend != BackendTrillian:
		return fmt.Errorf("data directory %s is a replica of Trillian tree %s (see %s): start it with --log trillian", dir, have, path)
	case have != strconv.FormatInt(lc.TrillianTree, 10):
		return fmt.Errorf("data directory %s holds the index of Trillian tree %s, not %d: use a new directory for another tree", dir, have, lc.TrillianTree)
	}
	return nil
}
