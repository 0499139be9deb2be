package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/provenance"
)

func historyVerb() verb {
	return verb{
		name: "history", args: "--item ITEM [--json] [--base URL]",
		summary: "print an item's verified custody history", needData: true,
		help: `
History gets the item's proof bundle, verifies it with the data
directory's log and operator keys (every signature, every inclusion proof,
the hash chain and the custody rules), and prints the history: the item,
its status, and one line per event. --json prints the same as JSON.

(An EPCIS 2.0 export will come once package provenance has one.)

Example:

  $ prov history --item "$ITEM"
  item:        01/09506000134352/21/7Q3M8ZK2C4XH1R6A
  status:      delivered to a buyer on 2026-11-23 (log index 9)
  ...
  INDEX  TIME                  KIND      ACTOR                                PLACE     DETAILS
  3      2026-11-23T10:00:00Z  register  Acme Ltd (acme, manufacturer)        Shenzhen  Trail chair, lot L42`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			asJSON := fs.Bool("json", false, "print JSON")
			base := fs.String("base", defaultBase, "the base `URL` of the printed Digital Link")
			return func(ctx context.Context) error {
				if err := required(fs, "item"); err != nil {
					return err
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				bundle, err := b.Bundle(ctx, id)
				if err != nil {
					return err
				}
				trust, err := b.Trust(ctx)
				if err != nil {
					return err
				}
				h, err := provenance.VerifyBundle(bundle, trust)
				if err != nil {
					return fmt.Errorf("the history of %s does not verify: %w", id, err)
				}
				return showHistory(c.stdout, h, *asJSON, *base, "against the data directory's keys: "+trustSummary(trust))
			}
		},
	}
}

func bundleVerb() verb {
	return verb{
		name: "bundle", args: "--item ITEM --out FILE",
		summary: "save an item's proof bundle, for offline verification", needData: true,
		help: `
Bundle writes the item's proof bundle to FILE ("-" for stdout): one JSON
file with every event of the item and every enrollment and revocation
they rely on, each with an inclusion proof against one signed checkpoint.
Anyone can check it offline with "prov verify", against keys they pinned.

Example:

  $ prov bundle --item "$ITEM" --out chair.bundle.json
  wrote the proof bundle of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A (9 entries, checkpoint size 40) to chair.bundle.json`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			out := fs.String("out", "", "the `file` to write (\"-\" for stdout)")
			return func(ctx context.Context) error {
				if err := required(fs, "item", "out"); err != nil {
					return err
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				bundle, err := b.Bundle(ctx, id)
				if err != nil {
					return err
				}
				trust, err := b.Trust(ctx)
				if err != nil {
					return err
				}
				h, err := provenance.VerifyBundle(bundle, trust)
				if err != nil {
					return fmt.Errorf("the bundle of %s does not verify: %w", id, err)
				}
				if *out == "-" {
					_, err := c.stdout.Write(bundle)
					return err
				}
				if err := os.WriteFile(*out, bundle, 0o644); err != nil {
					return fmt.Errorf("write bundle: %w", err)
				}
				fmt.Fprintf(c.stdout, "wrote the proof bundle of %s (%d events, checkpoint size %d) to %s\n",
					id, len(h.Events), h.Checkpoint.Size, *out)
				return nil
			}
		},
	}
}

func keysVerb() verb {
	return verb{
		name: "keys", args: "[--policy] [--origin ORIGIN]",
		summary: "print the log's origin and keys, which verifiers pin", needData: true,
		help: `
Keys prints the data directory's log origin, the log's verifier key (it
signs checkpoints) and the operator's verifier key (it signs enrollments,
revocations and rulings): what a verifier pins, out of band, to check
bundles with "prov verify". --policy prints them as a trust policy file
for "prov verify --policy".

If the data directory does not exist, keys makes it, with new keys and
the origin given by --origin. No other verb makes one.

Example:

  $ prov keys
  origin        provtrail.localhost/log
  log key       provtrail.localhost/log+7d3c2b1a+AU...
  operator key  operator+5e6f7a8b+AQ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			asPolicy := fs.Bool("policy", false, "print a trust policy file for \"prov verify --policy\"")
			fs.StringVar(&c.origin, "origin", "", "the log's `origin`, for a new data directory (default "+datadir.DefaultOrigin+")")
			return func(ctx context.Context) error {
				_, err := os.Stat(filepath.Join(c.dataDir, "origin"))
				isNew := errors.Is(err, os.ErrNotExist)
				c.create = true
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				t, err := b.Trust(ctx)
				if err != nil {
					return err
				}
				if isNew {
					fmt.Fprintf(c.stderr, "made a new data directory %s, with new log and operator keys\n", c.dataDir)
				}
				if *asPolicy {
					fmt.Fprint(c.stdout, formatPolicy(t))
					return nil
				}
				fmt.Fprintf(c.stdout, "origin        %s\nlog key       %s\noperator key  %s\n", t.Origin, t.LogKey, t.OperatorKey)
				return nil
			}
		},
	}
}

func rebuildVerb() verb {
	return verb{
		name: "rebuild", args: "",
		summary: "rebuild the data directory's index by replaying the whole log", needData: true,
		help: `
Rebuild deletes the data directory's index (items, actors, used claim
codes) and replays every entry of the log into an empty one, in order,
through the custody rules. The log itself is not changed. provd must not
be running on the directory.

Example:

  $ prov rebuild
  replayed 40 log positions into an empty index`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			return func(ctx context.Context) error {
				b, err := openLocal(ctx, c.dataDir, false, "")
				if err != nil {
					return err
				}
				n, err := b.rebuild(ctx)
				if cerr := b.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "replayed %d log positions into an empty index\n", n)
				return nil
			}
		},
	}
}
