package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// printHistory prints a verified history as a table, after a header with
// the item, its status and the checkpoint; verified says against what.
func printHistory(w io.Writer, h provenance.History, base, verified string) error {
	names := actorNames(h)
	st := h.State
	product := st.Product
	if st.Lot != "" {
		product += ", lot " + st.Lot
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "item:\t%s\n", h.Item)
	fmt.Fprintf(tw, "link:\t%s\n", h.Item.DigitalLink(base))
	fmt.Fprintf(tw, "product:\t%s\n", product)
	fmt.Fprintf(tw, "status:\t%s\n", statusLine(st, names))
	fmt.Fprintf(tw, "checkpoint:\t%s, size %d, root %s\n", h.Checkpoint.Origin, h.Checkpoint.Size, h.Checkpoint.Root)
	fmt.Fprintf(tw, "verified:\t%s\n", verified)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tTIME\tKIND\tACTOR\tPLACE\tDETAILS")
	for _, e := range h.Events {
		ev := e.Event
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Index, ev.Time.UTC().Format(time.RFC3339), ev.Kind,
			actorLabel(e), orDash(ev.Place), orDash(details(ev, names)))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// actorNames maps the ids of the actors in h to their display names.
func actorNames(h provenance.History) map[string]string {
	names := map[string]string{}
	for _, a := range h.Actors {
		names[a.ID] = a.Name
	}
	return names
}

// who names an actor id for people: "Acme Ltd (acme)".
func who(id string, names map[string]string) string {
	switch {
	case id == provenance.BuyerID:
		return "a buyer"
	case names[id] != "":
		return fmt.Sprintf("%s (%s)", names[id], id)
	}
	return id
}

// actorLabel names the signer of an event with its role.
func actorLabel(e provenance.HistoryEvent) string {
	switch {
	case e.Role == provenance.RoleOperator:
		return "operator"
	case e.Role == provenance.RoleBuyer && e.Event.Actor == provenance.BuyerID:
		return "buyer (one-off key)"
	case e.ActorName != "":
		return fmt.Sprintf("%s (%s, %s)", e.ActorName, e.Event.Actor, e.Role)
	}
	return fmt.Sprintf("%s (%s)", e.Event.Actor, e.Role)
}

// details says what an event did, beyond its kind.
func details(ev provenance.Event, names map[string]string) string {
	switch {
	case ev.Register != nil:
		s := ev.Register.Product
		if ev.Register.Lot != "" {
			s += ", lot " + ev.Register.Lot
		}
		return s
	case ev.Handoff != nil && ev.Handoff.To != "":
		return "to " + who(ev.Handoff.To, names)
	case ev.Handoff != nil:
		return "to a buyer by claim code"
	case ev.Receive != nil && ev.Receive.ClaimCode != "":
		return "with the claim code: delivered"
	case ev.Dispute != nil:
		s := ev.Dispute.Reason
		switch n := len(ev.Dispute.Evidence); n {
		case 0:
		case 1:
			s += " (1 evidence hash)"
		default:
			s += fmt.Sprintf(" (%d evidence hashes)", n)
		}
		return s
	case ev.Ruling != nil:
		return ev.Ruling.Decision
	}
	return ""
}

// statusLine says where an item stands.
func statusLine(st provenance.ItemState, names map[string]string) string {
	switch st.Status {
	case provenance.StatusInCustody:
		return "in custody of " + who(st.Custodian, names)
	case provenance.StatusInTransit:
		if st.Pending.To == "" {
			return fmt.Sprintf("in transit: offered by %s to a buyer by claim code (log index %d)", who(st.Custodian, names), st.Pending.Index)
		}
		return fmt.Sprintf("in transit from %s to %s (log index %d)", who(st.Custodian, names), who(st.Pending.To, names), st.Pending.Index)
	case provenance.StatusDelivered:
		return fmt.Sprintf("delivered to a buyer on %s (log index %d)", st.Delivered.UTC().Format(time.DateOnly), st.DeliveredAt)
	case provenance.StatusDisputed:
		return fmt.Sprintf("disputed by %s since log index %d: %s", who(st.Dispute.By, names), st.Dispute.Index, st.Dispute.Reason)
	}
	return string(st.Status)
}

// historyJSON is the --json form of a verified history.
type historyJSON struct {
	Item        string          `json:"item"`
	DigitalLink string          `json:"digital_link"`
	Product     string          `json:"product"`
	Lot         string          `json:"lot,omitempty"`
	Status      string          `json:"status"`
	StatusLine  string          `json:"status_line"`
	Custodian   string          `json:"custodian"`
	Checkpoint  checkpointJSON  `json:"checkpoint"`
	Verified    string          `json:"verified"`
	Events      []eventJSON     `json:"events"`
	Actors      []actorJSONView `json:"actors"`
}

type checkpointJSON struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root"`
}

type eventJSON struct {
	Index     uint64               `json:"index"`
	LeafHash  string               `json:"leaf_hash"`
	Time      string               `json:"time"`
	Kind      provenance.Kind      `json:"kind"`
	Actor     string               `json:"actor"`
	ActorName string               `json:"actor_name,omitempty"`
	Role      provenance.Role      `json:"role"`
	Place     string               `json:"place,omitempty"`
	Register  *provenance.Register `json:"register,omitempty"`
	Handoff   *provenance.Handoff  `json:"handoff,omitempty"`
	Receive   *provenance.Receive  `json:"receive,omitempty"`
	Dispute   *provenance.Dispute  `json:"dispute,omitempty"`
	Ruling    *provenance.Ruling   `json:"ruling,omitempty"`
}

type actorJSONView struct {
	ID      string          `json:"id"`
	Role    provenance.Role `json:"role"`
	Name    string          `json:"name"`
	Key     string          `json:"key"`
	Revoked bool            `json:"revoked,omitempty"`
}

func writeHistoryJSON(w io.Writer, h provenance.History, base, verified string) error {
	st := h.State
	out := historyJSON{
		Item: h.Item.String(), DigitalLink: h.Item.DigitalLink(base),
		Product: st.Product, Lot: st.Lot, Status: string(st.Status), StatusLine: statusLine(st, actorNames(h)),
		Custodian:  st.Custodian,
		Checkpoint: checkpointJSON{Origin: h.Checkpoint.Origin, Size: h.Checkpoint.Size, Root: h.Checkpoint.Root.String()},
		Verified:   verified,
		Events:     []eventJSON{},
		Actors:     []actorJSONView{},
	}
	for _, e := range h.Events {
		ev := e.Event
		out.Events = append(out.Events, eventJSON{
			Index: e.Index, LeafHash: e.LeafHash.String(), Time: ev.Time.UTC().Format(time.RFC3339),
			Kind: ev.Kind, Actor: ev.Actor, ActorName: e.ActorName, Role: e.Role, Place: ev.Place,
			Register: ev.Register, Handoff: ev.Handoff, Receive: ev.Receive, Dispute: ev.Dispute, Ruling: ev.Ruling,
		})
	}
	for _, a := range h.Actors {
		out.Actors = append(out.Actors, actorJSONView{ID: a.ID, Role: a.Role, Name: a.Name, Key: a.Key, Revoked: a.Revoked})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// showHistory prints h as a table, or as JSON.
func showHistory(w io.Writer, h provenance.History, asJSON bool, base, verified string) error {
	if asJSON {
		return writeHistoryJSON(w, h, base, verified)
	}
	return printHistory(w, h, base, verified)
}

// trustSummary names pinned keys for a "verified:" line.
func trustSummary(t provenance.Trust) string {
	return fmt.Sprintf("log key %s, operator key %s", short(t.LogKey), short(t.OperatorKey))
}

// short shortens a verifier key to name+hash.
func short(vkey string) string {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) < 3 {
		return vkey
	}
	return parts[0] + "+" + parts[1]
}
