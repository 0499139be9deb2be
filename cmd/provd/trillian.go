package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/trillianlog"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// The Trillian backend is wired here, in provd, the only command that
// serves a Trillian replica: prov and provload open data directories
// through the same datadir package without linking gRPC.
var _ datadir.TrillianOpener = openTrillian

// openTrillian connects to the log server, checks the tree's trust
// fingerprint and opens the log.
func openTrillian(ctx context.Context, lc datadir.LogConfig, trust provenance.Trust, signer note.Signer, logger *slog.Logger) (merkle.Log, func() error, error) {
	conn, err := grpc.NewClient(lc.TrillianAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to trillian at %s: %w", lc.TrillianAddr, err)
	}
	if err := pinTrust(ctx, trillian.NewTrillianAdminClient(conn), lc.TrillianTree, trust); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("trillian at %s: %w", lc.TrillianAddr, err)
	}
	l, err := trillianlog.Open(ctx, trillianlog.Config{
		Client: trillian.NewTrillianLogClient(conn),
		TreeID: lc.TrillianTree,
		Origin: trust.Origin,
		Signer: signer,
		Logger: logger,
	})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return l, func() error { return errors.Join(l.Close(), conn.Close()) }, nil
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
			return fmt.Errorf("get tree %d: %w", treeID, err)
		}
		if tree.GetTreeType() != trillian.TreeType_LOG {
			return fmt.Errorf("tree %d is a %v tree; provd needs a LOG tree (createtree --tree_type=LOG)", treeID, tree.GetTreeType())
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
			return fmt.Errorf("tree %d is the log of other keys (fingerprint %s, this directory's is %s): "+
				"every replica needs copies of the same origin, log.key and operator.key; this directory has origin %s, log key %s, operator key %s",
				treeID, strings.TrimPrefix(have, trustPrefix), strings.TrimPrefix(want, trustPrefix), t.Origin, t.LogKey, t.OperatorKey)
		case try > 0:
			return fmt.Errorf("tree %d: recording the keys' fingerprint in its description did not take", treeID)
		}
		// The first replica on this tree records its fingerprint; a replica
		// starting at the same moment with other keys reads it back and is
		// refused on the next pass.
		desc = strings.TrimSpace(desc + " " + want)
		if len(desc) > maxDescription {
			return fmt.Errorf("tree %d: its description leaves no room for the keys' fingerprint (%d bytes)", treeID, len(want))
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
