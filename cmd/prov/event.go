package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// parseItem reads an --item value: a GS1 Digital Link URI, its bare path
// (/01/{gtin}/21/{serial}), or the form events and histories print,
// 01/{gtin}/21/{serial}.
func parseItem(s string) (provenance.ItemID, error) {
	if strings.HasPrefix(s, "01/") {
		return provenance.ParseItemID(s)
	}
	return provenance.ParseDigitalLink(s)
}

// loadSigner loads an actor's signer key file (made by keygen).
func loadSigner(path string) (note.Signer, error) {
	s, _, err := merkle.LoadKeyFile(path)
	return s, err
}

// operatorSigner loads the operator's signer key: path, or the data
// directory's operator.key, and checks it is the key the log enforces.
func operatorSigner(ctx context.Context, c *conn, b backend, path string) (note.Signer, error) {
	if path == "" && c.server != "" {
		return nil, usagef("--operator-key FILE is needed with --server: the operator signs on this machine, never on the server")
	}
	if path == "" {
		path = c.operatorKeyPath()
	}
	s, vkey, err := merkle.LoadKeyFile(path)
	if err != nil {
		return nil, err
	}
	trust, err := b.Trust(ctx)
	if err != nil {
		return nil, err
	}
	if vkey != trust.OperatorKey {
		return nil, fmt.Errorf("%s is not the operator key of this log (its operator key is %s)", path, trust.OperatorKey)
	}
	return s, nil
}

// eventTime is the time an event says it happened: now, in UTC, to the
// second.
func (e *env) eventTime() time.Time {
	return e.now().UTC().Truncate(time.Second)
}

// itemEvent returns an event of kind about item, by signer, chained to the
// item's latest event, and the item as the log has it.
func (e *env) itemEvent(ctx context.Context, b backend, kind provenance.Kind, id provenance.ItemID, signer note.Signer) (provenance.Event, provenance.ItemState, error) {
	v, err := b.Item(ctx, id)
	if err != nil {
		return provenance.Event{}, provenance.ItemState{}, err
	}
	ev := provenance.Event{Kind: kind, Actor: signer.Name(), Time: e.eventTime(), Item: id, Prev: v.State.Last}
	return ev, v.State, nil
}

// submit signs ev with signer and submits it.
func submit(ctx context.Context, b backend, ev provenance.Event, signer note.Signer) (provenance.Receipt, error) {
	leaf, err := provenance.Sign(ev, signer)
	if err != nil {
		return provenance.Receipt{}, err
	}
	r, err := b.Submit(ctx, leaf)
	if re := (*provenance.RuleError)(nil); errors.As(err, &re) {
		return provenance.Receipt{}, &refusedError{re}
	}
	if err != nil {
		return provenance.Receipt{}, err
	}
	return r, nil
}

// describe names an event for a receipt: "handoff of ITEM to courier".
func describe(ev provenance.Event) string {
	var b strings.Builder
	b.WriteString(string(ev.Kind))
	switch {
	case ev.Enroll != nil:
		fmt.Fprintf(&b, " of %s (%s)", ev.Enroll.ID, ev.Enroll.Role)
	case ev.Revoke != nil:
		fmt.Fprintf(&b, " of %s", ev.Revoke.ID)
	case !ev.Item.IsZero():
		fmt.Fprintf(&b, " of %s", ev.Item)
	}
	switch {
	case ev.Handoff != nil && ev.Handoff.To != "":
		fmt.Fprintf(&b, " to %s", ev.Handoff.To)
	case ev.Handoff != nil:
		b.WriteString(" to a buyer (claim code)")
	}
	fmt.Fprintf(&b, " by %s", ev.Actor)
	return b.String()
}

// printReceipt prints where an accepted event is in the log.
func printReceipt(w io.Writer, ev provenance.Event, r provenance.Receipt) {
	verb := "logged"
	if r.Duplicate {
		verb = "was logged already"
	}
	fmt.Fprintf(w, "%s %s at log index %d, leaf hash %s (checkpoint size %d)\n",
		describe(ev), verb, r.Index, r.LeafHash, r.Checkpoint.Size)
}

// A refusedError is an event the log refused, told as prov tells it:
// what the event was, and why it was refused.
type refusedError struct{ rule *provenance.RuleError }

func (e *refusedError) Error() string {
	re := e.rule
	if re.Kind == "" {
		return fmt.Sprintf("event refused: %v", re.Err)
	}
	what := string(re.Kind)
	if !re.Item.IsZero() {
		what += " of " + re.Item.String()
	}
	return fmt.Sprintf("%s by %s refused: %v", what, re.Actor, re.Err)
}

func (e *refusedError) Unwrap() error { return e.rule }
