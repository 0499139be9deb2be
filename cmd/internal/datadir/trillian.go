package datadir

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle/trillianlog"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
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
}

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

// openTrillian connects to the log server, checks the tree's trust
// fingerprint and opens the log.
func (n *Node) openTrillian(ctx context.Context, lc LogConfig, signer note.Signer, logger *slog.Logger) error {
	if lc.TrillianAddr == "" || lc.TrillianTree == 0 {
		return errors.New("the Trillian backend needs the log server's address and a tree ID")
	}
	conn, err := grpc.NewClient(lc.TrillianAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to trillian at %s: %w", lc.TrillianAddr, err)
	}
	if err := pinTrust(ctx, trillian.NewTrillianAdminClient(conn), lc.TrillianTree, n.Trust); err != nil {
		conn.Close()
		return err
	}
	l, err := trillianlog.Open(ctx, trillianlog.Config{
		Client: trillian.NewTrillianLogClient(conn),
		TreeID: lc.TrillianTree,
		Origin: n.Trust.Origin,
		Signer: signer,
		Logger: logger,
	})
	if err != nil {
		conn.Close()
		return err
	}
	n.Log = l
	n.Backend = fmt.Sprintf("%s tree %d at %s", BackendTrillian, lc.TrillianTree, lc.TrillianAddr)
	n.closers = []func() error{l.Close, conn.Close}
	return nil
}

// trustPrefix starts the fingerprint kept in a tree's description.
const trustPrefix = "provtrail-trust:"

// trustFingerprint names the origin and the two verifier keys every
// replica of a tree must share.
func trustFingerprint(t provenance.Trust) string {
	h := sha256.Sum256([]byte(t.Origin + "\n" + t.LogKey + "\n" + t.OperatorKey + "\n"))
	return trustPrefix + base64.RawURLEncoding.EncodeToString(h[:])
}

// maxDescription is the length of Trillian's Trees.Description column.
const maxDescription = 200

// pinTrust checks the tree is a LOG tree whose description records this
// directory's origin and keys, recording them if no replica did yet.
func pinTrust(ctx context.Context, admin trillian.TrillianAdminClient, treeID int64, t provenance.Trust) error {
	want := trustFingerprint(t)
	for try := 0; ; try++ {
		tree, err := admin.GetTree(ctx, &trillian.GetTreeRequest{TreeId: treeID})
		if err != nil {
			return fmt.Errorf("get Trillian tree %d: %w", treeID, err)
		}
		if tree.GetTreeType() != trillian.TreeType_LOG {
			return fmt.Errorf("Trillian tree %d is a %v tree; provd needs a LOG tree (createtree --tree_type=LOG)", treeID, tree.GetTreeType())
		}
		desc := tree.GetDescription()
		have := ""
		for _, f := range strings.Fields(desc) {
			if strings.HasPrefix(f, trustPrefix) {
				have = f
			}
		}
		switch {
		case have == want:
			return nil
		case have != "":
			return fmt.Errorf("Trillian tree %d is the log of other keys (fingerprint %s, this directory's is %s): "+
				"every replica needs copies of the same origin, log.key and operator.key; this directory has origin %s, log key %s, operator key %s",
				treeID, strings.TrimPrefix(have, trustPrefix), strings.TrimPrefix(want, trustPrefix), t.Origin, t.LogKey, t.OperatorKey)
		case try > 0:
			return fmt.Errorf("Trillian tree %d: recording the keys' fingerprint in its description did not take", treeID)
		}
		// The first replica on this tree records its fingerprint; a replica
		// starting at the same moment with other keys reads it back and is
		// refused on the next pass.
		desc = strings.TrimSpace(desc + " " + want)
		if len(desc) > maxDescription {
			return fmt.Errorf("Trillian tree %d: its description leaves no room for the keys' fingerprint (%d bytes)", treeID, len(want))
		}
		_, err = admin.UpdateTree(ctx, &trillian.UpdateTreeRequest{
			Tree:       &trillian.Tree{TreeId: treeID, Description: desc},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
		})
		if err != nil {
			return fmt.Errorf("record the keys' fingerprint in Trillian tree %d: %w", treeID, err)
		}
	}
}
