package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

func labelSignVerb() verb {
	return verb{
		name: "label-sign", args: "--key FILE --item DL [--base URL]",
		summary: "sign an item's label (GS1 AI 8030) and print the link to encode (manufacturer)",
		help: `
Label-sign signs the id of an item with the manufacturer's key, so that
the label itself can be checked offline, and prints the item's Digital
Link with the signature as ?8030= (GS1 AI 8030, 86 characters of
base64url). Encode that link in the QR code: the server's QR route
draws it with /qr/01/{gtin}/21/{serial}.png?8030=SIG, after checking the
signature against the manufacturer's enrolled key. Nothing is logged and
no network is used; the key must be the one that registered the item.

Example:

  $ prov label-sign --key acme.key --item https://id.example.com/01/09506000134352/21/7Q3M8ZK2C4XH1R6A
  https://id.example.com/01/09506000134352/21/7Q3M8ZK2C4XH1R6A?8030=...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			key := fs.String("key", "", "the manufacturer's signer key `file`")
			item := fs.String("item", "", "the item's Digital Link `DL` (or /01/.../21/... or 01/.../21/...)")
			base := fs.String("base", "", "the base `URL` of the printed link (default: the --item link's, else "+defaultBase+")")
			return func(ctx context.Context) error {
				if err := required(fs, "key", "item"); err != nil {
					return err
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				signer, err := loadSigner(*key)
				if err != nil {
					return err
				}
				sig, err := provenance.SignLabel(id, signer)
				if err != nil {
					return err
				}
				b := *base
				if b == "" {
					b = linkBase(*item)
				}
				_, err = fmt.Fprintln(c.stdout, provenance.LabelLink(id, b, sig))
				return err
			}
		},
	}
}

// linkBase returns the scheme and host of a Digital Link, or defaultBase.
func linkBase(dl string) string {
	if i := indexItemPath(dl); i > 0 {
		return dl[:i]
	}
	return defaultBase
}

// indexItemPath returns where "/01/" starts in an http(s) link, or -1.
func indexItemPath(dl string) int {
	for _, p := range []string{"https://", "http://"} {
		if len(dl) > len(p) && dl[:len(p)] == p {
			for i := len(p); i+4 <= len(dl); i++ {
				if dl[i:i+4] == "/01/" {
					return i
				}
			}
		}
	}
	return -1
}

func verifyLabelVerb() verb {
	return verb{
		name: "verify-label", args: "--link DL (--actor-key VKEY | --bundle FILE (--policy FILE | --log-key VKEY --operator-key VKEY [--origin ORIGIN]))",
		summary: "check a label's signature (GS1 AI 8030) offline",
		help: `
Verify-label checks the ?8030= signature of a scanned Digital Link, with no
network and no data directory, and says which manufacturer signed it.

The manufacturer's key comes either from --actor-key, a verifier key you
pinned, or from a proof bundle of the item (--bundle), checked first
against your pinned log and operator keys exactly as "prov verify" does:
then the key is the one the operator enrolled for the actor that
registered the item, valid when it registered it. It exits 0 when the
signature is that key's over the link's item, and 1 otherwise: a label
whose signature does not match may be a copy.

Examples:

  $ prov verify-label --link "https://id.example.com/01/09506000134352/21/7Q3M8ZK2C4XH1R6A?8030=..." --actor-key "$ACMEKEY"
  $ prov verify-label --link "$LINK" --bundle item.bundle.json --policy keys.policy`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			link := fs.String("link", "", "the scanned Digital Link `DL`, with ?8030=")
			actorKey := fs.String("actor-key", "", "the manufacturer's pinned verifier key `vkey`")
			bundle := fs.String("bundle", "", "a proof bundle `file` of the item, to take the manufacturer's key from")
			origin := fs.String("origin", "", "the pinned log `origin` (default: the log key's name)")
			logKey := fs.String("log-key", "", "the pinned log verifier key `vkey` (with --bundle)")
			opKey := fs.String("operator-key", "", "the pinned operator verifier key `vkey` (with --bundle)")
			policy := fs.String("policy", "", "a trust policy `file` instead of the key flags (with --bundle)")
			return func(ctx context.Context) error {
				if err := required(fs, "link"); err != nil {
					return err
				}
				keyFlags := *origin != "" || *logKey != "" || *opKey != ""
				switch {
				case *actorKey != "" && *bundle != "":
					return usagef("give --actor-key or --bundle, not both")
				case *actorKey == "" && *bundle == "":
					return usagef("give the manufacturer's key: --actor-key VKEY, or --bundle FILE with pinned keys")
				case *actorKey != "" && (keyFlags || *policy != ""):
					return usagef("--policy and the log and operator keys go with --bundle")
				case *bundle != "" && *policy != "" && keyFlags:
					return usagef("give --policy or the key flags, not both")
				case *bundle != "" && *policy == "" && !keyFlags:
					return usagef("--bundle needs pinned keys: --policy FILE, or --log-key and --operator-key")
				}
				id, sig, err := provenance.ParseLabelLink(*link)
				if err != nil {
					return err
				}
				if sig == "" {
					return fmt.Errorf("the link has no label signature (?%s=)", provenance.LabelAI)
				}
				var v note.Verifier
				who := ""
				if *actorKey != "" {
					if v, err = note.NewVerifier(*actorKey); err != nil {
						return fmt.Errorf("--actor-key is not a signed-note verifier key (name+hash+base64): %w", err)
					}
					who = v.Name() + " (the pinned --actor-key)"
				} else {
					var trust provenance.Trust
					if *policy != "" {
						b, err := os.ReadFile(*policy)
						if err != nil {
							return fmt.Errorf("read policy: %w", err)
						}
						if trust, err = provenance.ParseTrustPolicy(b); err != nil {
							return fmt.Errorf("policy %s: %w", *policy, err)
						}
					} else {
						if err := required(fs, "log-key", "operator-key"); err != nil {
							return err
						}
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
					if h.Item != id {
						return fmt.Errorf("the bundle is of %s, not of the link's item %s", h.Item, id)
					}
					var maker provenance.ActorState
					for _, a := range h.Actors {
						if a.ID == h.State.RegisteredBy {
							maker = a
						}
					}
					key := provenance.LabelKey(h.State, maker)
					if key == "" {
						return fmt.Errorf("the bundle holds no key of %s valid when it registered %s", h.State.RegisteredBy, id)
					}
					if v, err = note.NewVerifier(key); err != nil {
						return err
					}
					who = fmt.Sprintf("%s (%s), the manufacturer that registered the item, as enrolled in the verified bundle", maker.Name, maker.ID)
				}
				if err := provenance.VerifyLabel(id, sig, v); err != nil {
					return fmt.Errorf("label of %s does NOT verify: %w; this label may be a copy", id, err)
				}
				_, err = fmt.Fprintf(c.stdout, "label of %s: signed by %s; checked offline\n", id, who)
				return err
			}
		},
	}
}
