package main

import (
	"context"
	"encoding/json"
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
		name: "history", args: "--item ITEM [--json | --epcis] [--base URL] [--server URL (--policy FILE | --log-key VKEY --operator-key VKEY)]",
		summary: "print an item's verified custody history", needData: true,
		help: `
History gets the item's proof bundle, verifies it (every signature, every
inclusion proof, the hash chain and the custody rules), and prints the
history: the item, its status, and one line per event. --json prints the
same as JSON; --epcis prints it as an EPCIS 2.0 JSON-LD document
(ObjectEvents, Digital Links under --base in epcList).

On a data directory it verifies with the directory's own keys. With
--server it trusts the server for nothing: give the keys you pinned, with
--policy FILE or --log-key and --operator-key. "prov keys --server URL
--out keys.policy" writes such a file from the server's answer, once
(trust on first use).

Example:

  $ prov history --item "$ITEM"
  item:        01/09506000134352/21/7Q3M8ZK2C4XH1R6A
  status:      delivered to a buyer on 2026-11-23 (log index 9)
  ...
  INDEX  TIME                  KIND      ACTOR                                PLACE     DETAILS
  3      2026-11-23T10:00:00Z  register  Acme Ltd (acme, manufacturer)        Shenzhen  Trail chair, lot L42

  $ prov history --server http://127.0.0.1:8080 --policy keys.policy --item "$ITEM" --epcis`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			asJSON := fs.Bool("json", false, "print JSON")
			asEPCIS := fs.Bool("epcis", false, "print an EPCIS 2.0 JSON-LD document")
			base := fs.String("base", defaultBase, "the base `URL` of the printed Digital Link")
			p := addPinFlags(fs)
			return func(ctx context.Context) error {
				if err := required(fs, "item"); err != nil {
					return err
				}
				if *asJSON && *asEPCIS {
					return usagef("give --json or --epcis, not both")
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				h, verified, err := c.verifiedHistory(ctx, id, p)
				if err != nil {
					return err
				}
				if *asEPCIS {
					enc := json.NewEncoder(c.stdout)
					enc.SetIndent("", "  ")
					enc.SetEscapeHTML(false)
					return enc.Encode(provenance.EPCIS(h.History, *base, c.now()))
				}
				return showHistory(c.stdout, h.History, *asJSON, *base, verified)
			}
		},
	}
}

func bundleVerb() verb {
	return verb{
		name: "bundle", args: "--item ITEM --out FILE [--server URL (--policy FILE | --log-key VKEY --operator-key VKEY)]",
		summary: "save an item's proof bundle, for offline verification", needData: true,
		help: `
Bundle writes the item's proof bundle to FILE ("-" for stdout): one JSON
file with every event of the item and every enrollment and revocation
they rely on, each with an inclusion proof against one signed checkpoint.
Anyone can check it offline with "prov verify", against keys they pinned.
The bundle is verified before it is written; with --server, against the
keys you pinned (as for history).

Example:

  $ prov bundle --item "$ITEM" --out chair.bundle.json
  wrote the proof bundle of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A (9 entries, checkpoint size 40) to chair.bundle.json`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			out := fs.String("out", "", "the `file` to write (\"-\" for stdout)")
			p := addPinFlags(fs)
			return func(ctx context.Context) error {
				if err := required(fs, "item", "out"); err != nil {
					return err
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				h, _, err := c.verifiedHistory(ctx, id, p)
				if err != nil {
					return err
				}
				if *out == "-" {
					_, err := c.stdout.Write(h.bundle)
					return err
				}
				if err := os.WriteFile(*out, h.bundle, 0o644); err != nil {
					return fmt.Errorf("write bundle: %w", err)
				}
				fmt.Fprintf(c.stdout, "wrote the proof bundle of %s (%d events, checkpoint size %d) to %s\n",
					id, len(h.Events), h.Checkpoint.Size, *out)
				return nil
			}
		},
	}
}

// A verified is a history verified from its bundle.
type verified struct {
	provenance.History
	bundle []byte
}

// verifiedHistory gets an item's bundle and verifies it: against the keys
// pinned with p, else (for a data directory only) the directory's keys.
// It returns the history and what it was verified against.
func (c *conn) verifiedHistory(ctx context.Context, id provenance.ItemID, p *pinFlags) (verified, string, error) {
	pinned, err := p.trust()
	if err != nil {
		return verified{}, "", err
	}
	if pinned == nil && c.server != "" {
		return verified{}, "", usagef("with --server, pin the log's keys: --policy FILE, or --log-key and --operator-key; "+
			"\"prov keys --server %s --out keys.policy\" writes FILE from the server's answer (trust on first use)", c.server)
	}
	c.pins = pinned
	b, err := c.open(ctx)
	if err != nil {
		return verified{}, "", err
	}
	defer b.Close()
	bundle, err := b.Bundle(ctx, id)
	if err != nil {
		return verified{}, "", err
	}
	trust, how := provenance.Trust{}, ""
	if pinned != nil {
		trust, how = *pinned, "against the pinned "+trustSummary(*pinned)
	} else {
		if trust, err = b.Trust(ctx); err != nil {
			return verified{}, "", err
		}
		how = "against the data directory's keys: " + trustSummary(trust)
	}
	h, err := provenance.VerifyBundle(bundle, trust)
	if err != nil {
		return verified{}, "", fmt.Errorf("the history of %s does NOT verify: %w", id, err)
	}
	return verified{History: h, bundle: bundle}, how, nil
}

// pinFlags are the keys a user pins: a policy file, or the keys as flags.
type pinFlags struct {
	origin, logKey, opKey, policy *string
}

func addPinFlags(fs *flag.FlagSet) *pinFlags {
	return &pinFlags{
		policy: fs.String("policy", "", "a trust policy `file` (as \"prov keys --policy\" or --out writes) with the pinned keys"),
		origin: fs.String("origin", "", "the pinned log `origin` (default: the log key's name)"),
		logKey: fs.String("log-key", "", "the pinned log verifier key `vkey`"),
		opKey:  fs.String("operator-key", "", "the pinned operator verifier key `vkey`"),
	}
}

// trust returns the pinned keys, or nil if none were given.
func (p *pinFlags) trust() (*provenance.Trust, error) {
	keyFlags := *p.origin != "" || *p.logKey != "" || *p.opKey != ""
	switch {
	case *p.policy != "" && keyFlags:
		return nil, usagef("give --policy or the key flags, not both")
	case *p.policy != "":
		b, err := os.ReadFile(*p.policy)
		if err != nil {
			return nil, fmt.Errorf("read policy: %w", err)
		}
		t, err := provenance.ParseTrustPolicy(b)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", *p.policy, err)
		}
		return &t, nil
	case !keyFlags:
		return nil, nil
	case *p.logKey == "" || *p.opKey == "":
		return nil, usagef("give both --log-key and --operator-key (or --policy FILE)")
	}
	t, err := pinnedTrust(*p.origin, *p.logKey, *p.opKey)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func keysVerb() verb {
	return verb{
		name: "keys", args: "[--policy] [--out FILE] [--origin ORIGIN] [--server URL]",
		summary: "print the log's origin and keys, which verifiers pin", needData: true,
		help: `
Keys prints the log's origin, the log's verifier key (it signs
checkpoints) and the operator's verifier key (it signs enrollments,
revocations and rulings): what a verifier pins, out of band, to check
bundles with "prov verify". --policy prints them as a trust policy file
for "prov verify --policy"; --out FILE writes that file instead.

With --server, the keys are what that provd says they are: trust on first
use. --out FILE pins them: later runs with --out compare the server's
answer with FILE and fail loudly if the keys changed. Compare the keys
with ones the operator published elsewhere if you can.

If the data directory does not exist, keys makes it, with new keys and
the origin given by --origin. No other verb makes one.

Example:

  $ prov keys
  origin        provtrail.localhost/log
  log key       provtrail.localhost/log+7d3c2b1a+AU...
  operator key  operator+5e6f7a8b+AQ...

  $ prov keys --server http://127.0.0.1:8080 --out keys.policy`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			asPolicy := fs.Bool("policy", false, "print a trust policy file for \"prov verify --policy\"")
			out := fs.String("out", "", "write the trust policy to `file` (or check it against the keys, if it exists)")
			fs.StringVar(&c.origin, "origin", "", "the log's `origin`, for a new data directory (default "+datadir.DefaultOrigin+")")
			return func(ctx context.Context) error {
				isNew := false
				if c.server == "" {
					_, err := os.Stat(filepath.Join(c.dataDir, "origin"))
					isNew = errors.Is(err, os.ErrNotExist)
					c.create = true
				} else if c.origin != "" {
					return usagef("--origin names the log of a new data directory; a server's log has its own")
				}
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
				if *out != "" {
					return c.pinKeys(t, *out)
				}
				if *asPolicy {
					fmt.Fprint(c.stdout, provenance.FormatTrustPolicy(t))
					return nil
				}
				fmt.Fprintf(c.stdout, "origin        %s\nlog key       %s\noperator key  %s\n", t.Origin, t.LogKey, t.OperatorKey)
				if c.server != "" {
					fmt.Fprintf(c.stderr, "these keys are what %s says; pin them with --out FILE only if you trust this answer (trust on first use)\n", c.server)
				}
				return nil
			}
		},
	}
}

// pinKeys writes t as a trust policy file at path, or, if the file exists,
// checks that it pins the same keys.
func (c *conn) pinKeys(t provenance.Trust, path string) error {
	from := "the data directory " + c.dataDir
	if c.server != "" {
		from = c.server
	}
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		pinned, err := provenance.ParseTrustPolicy(old)
		if err != nil {
			return fmt.Errorf("%s exists and is not a trust policy: %w", path, err)
		}
		if pinned != t {
			return fmt.Errorf("the keys of %s are NOT the ones pinned in %s: pinned log key %s, operator key %s; now log key %s, operator key %s. "+
				"Either the log was replaced or someone is answering in its place; ask the operator before trusting it",
				from, path, pinned.LogKey, pinned.OperatorKey, t.LogKey, t.OperatorKey)
		}
		fmt.Fprintf(c.stdout, "the keys of %s match the ones pinned in %s\n", from, path)
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(provenance.FormatTrustPolicy(t)), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(c.stdout, "origin        %s\nlog key       %s\noperator key  %s\n", t.Origin, t.LogKey, t.OperatorKey)
	if c.server != "" {
		fmt.Fprintf(c.stdout, "pinned in %s. Trust on first use: these keys are what %s said just now, and nothing proves them yet; "+
			"compare them with keys the operator published elsewhere. From now on, history, bundle and verify check against them (--policy %s)\n",
			path, c.server, path)
		return nil
	}
	fmt.Fprintf(c.stdout, "pinned in %s (use it with --policy %s)\n", path, path)
	return nil
}

func rebuildVerb() verb {
	return verb{
		name: "rebuild", args: "",
		summary: "rebuild an index (the data directory's, or a shared one) by replaying the whole log", needData: true,
		help: `
Rebuild deletes an index (items, actors, used claim codes) and replays
every entry of the log into an empty one, in order, through the custody
rules. The log itself is not changed.

Without --index it rebuilds the data directory's index from the data
directory's log; provd must not be running on the directory.

With --index mysql://... it rebuilds the index that replicas share in a
MySQL or MariaDB database (provd's --index) from the log a provd serves
at --server: one that does not use this index (a mirror, or a replica
started on a spare data directory with --index bolt). It reads
the log through the server's C2SP tiles up to its latest checkpoint and
verifies the checkpoint against the pinned keys (--policy, or --log-key
and --operator-key), and every entry against it, trusting nothing else
the server says. Stop every replica that uses the index first; started
again, they go on from the rebuilt index. An index recorded as another log's is refused.

Examples:

  $ prov rebuild
  replayed 40 log positions into an empty index

  $ prov rebuild --server https://replica1.example.com --policy keys.policy \
      --index 'mysql://provd:secret@tcp(db.example.com:3306)/provtrail'
  replayed 40 log positions from https://replica1.example.com (checkpoint size 40) into the index mysql provd@tcp(db.example.com:3306)/provtrail`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			index := fs.String("index", "", "a shared `index` to rebuild, mysql://user:password@tcp(host:3306)/dbname (as provd's --index; default: the data directory's)")
			p := addPinFlags(fs)
			return func(ctx context.Context) error {
				if *index != "" {
					return c.rebuildShared(ctx, *index, p)
				}
				if c.server != "" {
					return usagef("rebuild works on a data directory, not a server: stop provd and run it with --data " +
						"(or give --index mysql://... to rebuild a shared index from the server's log)")
				}
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
