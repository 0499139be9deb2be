package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

func verifyVerb() verb {
	return verb{
		name: "verify", args: "--bundle FILE (--log-key VKEY --operator-key VKEY [--origin ORIGIN] | --policy FILE) [--json]",
		summary: "verify a proof bundle offline, against pinned keys",
		help: `
Verify checks a proof bundle against keys you pinned beforehand, with no
network and no data directory: the checkpoint's signature by the log key,
every entry's inclusion proof, every event's signature by the key valid at
its log position (the operator key for enrollments), the hash chain of the
item's events and the custody rules. It prints the verified history and
exits 0, or says exactly what failed and exits 1. Nothing in the bundle is
trusted, its keys least of all.

Pin the keys that "prov keys" prints, with flags (--origin defaults to the
log key's name, which is the log's origin) or with --policy FILE, a trust
policy in the C2SP tlog-policy form, as "prov keys --policy" prints it:

  log <log vkey> [<url>]
  operator <operator vkey>
  quorum none

"operator" is provtrail's own line: the C2SP form covers only checkpoints.
prov does not check witness cosignatures yet, so it refuses a policy with
"witness" or "group" lines, or a quorum other than "none".

Examples:

  $ prov verify --bundle chair.bundle.json --log-key "$LOGKEY" --operator-key "$OPKEY"
  $ prov verify --bundle chair.bundle.json --policy provtrail.policy`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			bundle := fs.String("bundle", "", "the bundle `file` (\"-\" for stdin)")
			origin := fs.String("origin", "", "the pinned log `origin` (default: the log key's name)")
			logKey := fs.String("log-key", "", "the pinned log verifier key `vkey`")
			opKey := fs.String("operator-key", "", "the pinned operator verifier key `vkey`")
			policy := fs.String("policy", "", "a trust policy `file` instead of the key flags")
			asJSON := fs.Bool("json", false, "print the verified history as JSON")
			base := fs.String("base", defaultBase, "the base `URL` of the printed Digital Link")
			return func(ctx context.Context) error {
				if err := required(fs, "bundle"); err != nil {
					return err
				}
				keyFlags := *origin != "" || *logKey != "" || *opKey != ""
				var trust provenance.Trust
				switch {
				case *policy != "" && keyFlags:
					return usagef("give --policy or the key flags, not both")
				case *policy != "":
					b, err := os.ReadFile(*policy)
					if err != nil {
						return fmt.Errorf("read policy: %w", err)
					}
					if trust, err = provenance.ParseTrustPolicy(b); err != nil {
						return fmt.Errorf("policy %s: %w", *policy, err)
					}
				default:
					if err := required(fs, "log-key", "operator-key"); err != nil {
						return usagef("%v (or give --policy FILE)", err)
					}
					var err error
					if trust, err = pinnedTrust(*origin, *logKey, *opKey); err != nil {
						return err
					}
				}
				data, err := c.readBundle(*bundle)
				if err != nil {
					return err
				}
				h, err := provenance.VerifyBundle(data, trust)
				if err != nil {
					return fmt.Errorf("%s does NOT verify: %w", *bundle, err)
				}
				return showHistory(c.stdout, h, *asJSON, *base, "offline, against the pinned "+trustSummary(trust))
			}
		},
	}
}

// pinnedTrust checks the pinned keys given as flags.
func pinnedTrust(origin, logKey, opKey string) (provenance.Trust, error) {
	lv, err := note.NewVerifier(logKey)
	if err != nil {
		return provenance.Trust{}, fmt.Errorf("--log-key is not a signed-note verifier key (name+hash+base64): %w", err)
	}
	if _, err := note.NewVerifier(opKey); err != nil {
		return provenance.Trust{}, fmt.Errorf("--operator-key is not a signed-note verifier key (name+hash+base64): %w", err)
	}
	if origin == "" {
		origin = lv.Name()
	}
	return provenance.Trust{Origin: origin, LogKey: logKey, OperatorKey: opKey}, nil
}

// readBundle reads a bundle file, or stdin for "-", up to the largest
// size VerifyBundle reads (and one byte more, so that it says so).
func (c *conn) readBundle(path string) ([]byte, error) {
	var r io.Reader = c.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read bundle: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, provenance.MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	return b, nil
}
