package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

func keygenVerb() verb {
	return verb{
		name: "keygen", args: "--id ID --out FILE",
		summary: "make a new signing key for an actor",
		help: `
Keygen makes a new Ed25519 signed-note key for the actor ID, writes its
signer key to FILE (mode 0600; an existing file is never overwritten) and
prints its verifier key on stdout: give that to the operator, who enrolls
it. Keep FILE secret: whoever holds it signs as ID.

Example:

  $ prov keygen --id acme --out acme.key
  acme+8b3f2a01+AZ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			id := fs.String("id", "", "the actor `id`: 3 to 64 of a-z, 0-9 and '-'")
			out := fs.String("out", "", "the `file` to write the signer key to")
			return func(ctx context.Context) error {
				if err := required(fs, "id", "out"); err != nil {
					return err
				}
				if err := provenance.CheckActorID(*id); err != nil {
					if ee := (*provenance.EventError)(nil); errors.As(err, &ee) {
						return fmt.Errorf("--id: %s", ee.Reason)
					}
					return err
				}
				vkey, err := merkle.CreateKeyFile(*out, *id)
				if errors.Is(err, os.ErrExist) {
					return fmt.Errorf("%s exists already; keygen never overwrites a key file", *out)
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, vkey)
				fmt.Fprintf(c.stderr, "wrote the signer key of %s to %s (keep it secret); its verifier key is above\n", *id, *out)
				return nil
			}
		},
	}
}

func enrollVerb() verb {
	return verb{
		name: "enroll", args: "--id ID --role ROLE --name NAME --key VKEY [--operator-key FILE]",
		summary: "enroll an actor and its key (operator)", needData: true,
		help: `
Enroll logs that the actor ID exists, with a role (manufacturer, courier,
reseller or buyer), a display name (a company, never a person) and its
verifier key. It is signed with the operator key: the data directory's
operator.key unless --operator-key names another file.

Example:

  $ prov enroll --id acme --role manufacturer --name "Acme Ltd" --key "$(cat acme.vkey)"
  enroll of acme (manufacturer) by operator logged at log index 0, leaf hash ... (checkpoint size 1)`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			id := fs.String("id", "", "the actor `id`")
			role := fs.String("role", "", "manufacturer, courier, reseller or buyer")
			name := fs.String("name", "", "the display `name`, e.g. a company name")
			key := fs.String("key", "", "the actor's verifier key `vkey`, as keygen printed it")
			opKey := fs.String("operator-key", "", "the operator's signer key `file` (default DATA/operator.key)")
			return func(ctx context.Context) error {
				if err := required(fs, "id", "role", "name", "key"); err != nil {
					return err
				}
				r := provenance.Role(*role)
				if !r.Valid() || r == provenance.RoleOperator {
					return usagef("--role %q: want manufacturer, courier, reseller or buyer", *role)
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				op, err := operatorSigner(ctx, c, b, *opKey)
				if err != nil {
					return err
				}
				ev := provenance.Event{Kind: provenance.KindEnroll, Actor: op.Name(), Time: c.eventTime(),
					Enroll: &provenance.Actor{ID: *id, Role: r, Name: *name, Key: strings.TrimSpace(*key)}}
				return c.submitAndPrint(ctx, b, ev, op)
			}
		},
	}
}

func revokeVerb() verb {
	return verb{
		name: "revoke", args: "--id ID --reason TEXT [--operator-key FILE]",
		summary: "revoke an actor's key (operator)", needData: true,
		help: `
Revoke logs that the key of actor ID stops being valid from this log
position on: events it signs later are refused. Earlier events stay valid.
The actor may be enrolled again with a new key. Signed with the operator
key.

Example:

  $ prov revoke --id courier-x --reason "key lost"
  revoke of courier-x by operator logged at log index 7, leaf hash ... (checkpoint size 8)`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			id := fs.String("id", "", "the actor `id`")
			reason := fs.String("reason", "", "why, in a short `text` (logged publicly)")
			opKey := fs.String("operator-key", "", "the operator's signer key `file` (default DATA/operator.key)")
			return func(ctx context.Context) error {
				if err := required(fs, "id", "reason"); err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				op, err := operatorSigner(ctx, c, b, *opKey)
				if err != nil {
					return err
				}
				ev := provenance.Event{Kind: provenance.KindRevoke, Actor: op.Name(), Time: c.eventTime(),
					Revoke: &provenance.Revoke{ID: *id, Reason: *reason}}
				return c.submitAndPrint(ctx, b, ev, op)
			}
		},
	}
}

func handoffVerb() verb {
	return verb{
		name: "handoff", args: "--key FILE --item ITEM (--to ACTOR | --claim) [--place CITY]",
		summary: "offer custody of an item to an actor, or to a buyer by claim code", needData: true,
		help: `
Handoff offers custody of an item you hold to the enrolled actor named by
--to, who takes it with "prov receive". For a buyer, who has no account,
use --claim instead: prov makes a one-time claim code, logs only its salted
hash, and prints the code on stdout. Give the code to the buyer only (on
the parcel slip, say); the buyer receives with it. It is shown only once.

ITEM is the item's GS1 Digital Link, e.g.
https://id.provtrail.localhost/01/09506000134352/21/7Q3M8ZK2C4XH1R6A,
its path /01/.../21/..., or 01/{gtin}/21/{serial}.

Examples:

  $ prov handoff --key acme.key --item "$ITEM" --to courier-x --place Shenzhen
  handoff of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A to courier-x by acme logged at log index 4, ...

  $ prov handoff --key shop.key --item "$ITEM" --claim
  K7D2M9QX4T1VB6NP3H8C`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			key := fs.String("key", "", "your signer key `file`")
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			to := fs.String("to", "", "the `actor` id to hand off to")
			claim := fs.Bool("claim", false, "hand off to a buyer by a one-time claim code")
			place := fs.String("place", "", "where, coarsely (a `city`)")
			return func(ctx context.Context) error {
				if err := required(fs, "key", "item"); err != nil {
					return err
				}
				if (*to == "") == !*claim {
					return usagef("give either --to ACTOR or --claim")
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				signer, err := loadSigner(*key)
				if err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				ev, _, err := c.itemEvent(ctx, b, provenance.KindHandoff, id, signer)
				if err != nil {
					return err
				}
				ev.Place = *place
				if !*claim {
					ev.Handoff = &provenance.Handoff{To: *to}
					return c.submitAndPrint(ctx, b, ev, signer)
				}
				code, h, err := provenance.NewClaim(c.rand)
				if err != nil {
					return err
				}
				ev.Handoff = &h
				r, err := submit(ctx, b, ev, signer)
				if err != nil {
					return err
				}
				printReceipt(c.stderr, ev, r)
				fmt.Fprintln(c.stderr, "claim code below: give it to the buyer only; it is not stored anywhere and is shown only once")
				fmt.Fprintln(c.stdout, code)
				return nil
			}
		},
	}
}

func receiveVerb() verb {
	return verb{
		name: "receive", args: "--item ITEM (--key FILE | --claim-code CODE [--save-key FILE]) [--place CITY]",
		summary: "take custody of an item handed off to you", needData: true,
		help: `
Receive takes custody of an item handed off to you. An enrolled actor
signs with its key (--key). A buyer gives the claim code instead
(--claim-code) and needs no key: prov makes a one-off key for this
receipt, which marks the item delivered. With --save-key the one-off key
is kept in FILE, so that the buyer can later "prov dispute --key FILE".

Examples:

  $ prov receive --key courier.key --item "$ITEM" --place Hong Kong
  receive of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A by courier-x logged at log index 5, ...

  $ prov receive --item "$ITEM" --claim-code K7D2M9QX4T1VB6NP3H8C
  receive of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A by buyer logged at log index 9, ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			key := fs.String("key", "", "your signer key `file` (an enrolled receiver)")
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			code := fs.String("claim-code", "", "the claim `code` the seller gave you (a buyer)")
			saveKey := fs.String("save-key", "", "with --claim-code: keep the buyer's one-off key in `file`")
			place := fs.String("place", "", "where, coarsely (a `city`)")
			return func(ctx context.Context) error {
				if err := required(fs, "item"); err != nil {
					return err
				}
				switch {
				case (*key == "") == (*code == ""):
					return usagef("give either --key FILE or --claim-code CODE")
				case *saveKey != "" && *code == "":
					return usagef("--save-key goes with --claim-code")
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				var signer note.Signer
				rec := &provenance.Receive{}
				if *key != "" {
					if signer, err = loadSigner(*key); err != nil {
						return err
					}
					rec.By = signer.Name()
				} else {
					if signer, rec.BuyerKey, err = buyerKey(*saveKey); err != nil {
						return err
					}
					rec.ClaimCode = strings.TrimSpace(*code)
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				ev, st, err := c.itemEvent(ctx, b, provenance.KindReceive, id, signer)
				if err != nil {
					return err
				}
				if st.Status == provenance.StatusDelivered {
					// Say it as the buyer needs to hear it: a second receipt
					// of a delivered item is what a copied label looks like.
					return fmt.Errorf("%s was already delivered to a buyer on %s (log index %d); a claim code works only once",
						id, st.Delivered.UTC().Format(time.DateOnly), st.DeliveredAt)
				}
				ev.Place, ev.Receive = *place, rec
				return c.submitAndPrint(ctx, b, ev, signer)
			}
		},
	}
}

// buyerKey makes a buyer's one-off key, kept in path unless path is "".
func buyerKey(path string) (note.Signer, string, error) {
	if path == "" {
		skey, vkey, err := merkle.GenerateKey(provenance.BuyerID)
		if err != nil {
			return nil, "", err
		}
		s, err := note.NewSigner(skey)
		return s, vkey, err
	}
	if _, err := merkle.CreateKeyFile(path, provenance.BuyerID); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, "", fmt.Errorf("%s exists already; prov never overwrites a key file", path)
		}
		return nil, "", err
	}
	s, vkey, err := merkle.LoadKeyFile(path)
	return s, vkey, err
}

func disputeVerb() verb {
	return verb{
		name: "dispute", args: "--key FILE --item ITEM --reason TEXT [--evidence FILE ...]",
		summary: "flag an item you held as disputed", needData: true,
		help: `
Dispute flags an item as disputed, by an actor that held it (or the buyer,
with the key saved by "receive --save-key"). Until the operator rules, no
one can hand it off or receive it. Evidence files (photos, papers) stay
with you: only their SHA-256 hashes are logged, so you can later prove
what you had. --evidence may be given up to 16 times.

Example:

  $ prov dispute --key shop.key --item "$ITEM" --reason "seal broken" --evidence seal.jpg
  dispute of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A by shop logged at log index 11, ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			key := fs.String("key", "", "your signer key `file`")
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			reason := fs.String("reason", "", "what is wrong, in a short `text` (logged publicly)")
			place := fs.String("place", "", "where, coarsely (a `city`)")
			var evidence []string
			fs.Func("evidence", "a `file` of evidence; only its SHA-256 is logged (repeatable)", func(s string) error {
				evidence = append(evidence, s)
				return nil
			})
			return func(ctx context.Context) error {
				if err := required(fs, "key", "item", "reason"); err != nil {
					return err
				}
				id, err := parseItem(*item)
				if err != nil {
					return err
				}
				hashes := make([]string, 0, len(evidence))
				for _, path := range evidence {
					h, err := hashFile(path)
					if err != nil {
						return err
					}
					hashes = append(hashes, h)
				}
				signer, err := loadSigner(*key)
				if err != nil {
					return err
				}
				b, err := c.open(ctx)
				if err != nil {
					return err
				}
				defer b.Close()
				ev, _, err := c.itemEvent(ctx, b, provenance.KindDispute, id, signer)
				if err != nil {
					return err
				}
				ev.Place = *place
				ev.Dispute = &provenance.Dispute{Reason: *reason, Evidence: hashes}
				if len(hashes) == 0 {
					ev.Dispute.Evidence = nil
				}
				return c.submitAndPrint(ctx, b, ev, signer)
			}
		},
	}
}

// hashFile returns the lowercase hex SHA-256 of a file.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("evidence: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("evidence %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func rulingVerb() verb {
	return verb{
		name: "ruling", args: "--item ITEM --decision TEXT [--operator-key FILE]",
		summary: "close an item's dispute (operator)", needData: true,
		help: `
Ruling closes the open dispute of an item with the operator's decision;
the item returns to where it stood before the dispute. Signed with the
operator key.

Example:

  $ prov ruling --item "$ITEM" --decision "seal replaced by the courier; item genuine"
  ruling of 01/09506000134352/21/7Q3M8ZK2C4XH1R6A by operator logged at log index 12, ...`,
		setup: func(fs *flag.FlagSet, c *conn) func(context.Context) error {
			item := fs.String("item", "", "the `item`: Digital Link URI or 01/{gtin}/21/{serial}")
			decision := fs.String("decision", "", "the decision, in a short `text` (logged publicly)")
			opKey := fs.String("operator-key", "", "the operator's signer key `file` (default DATA/operator.key)")
			return func(ctx context.Context) error {
				if err := required(fs, "item", "decision"); err != nil {
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
				op, err := operatorSigner(ctx, c, b, *opKey)
				if err != nil {
					return err
				}
				ev, _, err := c.itemEvent(ctx, b, provenance.KindRuling, id, op)
				if err != nil {
					return err
				}
				ev.Ruling = &provenance.Ruling{Decision: *decision}
				return c.submitAndPrint(ctx, b, ev, op)
			}
		},
	}
}

// submitAndPrint signs and submits ev and prints its receipt on stdout.
func (c *conn) submitAndPrint(ctx context.Context, b backend, ev provenance.Event, signer note.Signer) error {
	r, err := submit(ctx, b, ev, signer)
	if err != nil {
		return err
	}
	printReceipt(c.stdout, ev, r)
	return nil
}
