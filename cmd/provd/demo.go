package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// demoGTIN is a GS1 example GTIN-14 (check digit verified).
const demoGTIN = "09506000134352"

// The demo actors: a manufacturer, two couriers and a daigou (a reseller
// who buys abroad for buyers at home).
var demoActors = []provenance.Actor{
	{ID: "demo-maker", Role: provenance.RoleManufacturer, Name: "Lotus Leather Works (demo)"},
	{ID: "demo-courier-sz", Role: provenance.RoleCourier, Name: "Pearl River Express (demo)"},
	{ID: "demo-courier-hk", Role: provenance.RoleCourier, Name: "Harbour Couriers (demo)"},
	{ID: "demo-daigou", Role: provenance.RoleReseller, Name: "Mei's Daigou Shop (demo)"},
}

// A demoItem is a demo item and what its history shows.
type demoItem struct {
	id   provenance.ItemID
	what string
}

func (d demoItem) link(base string) string { return d.id.DigitalLink(base) }

// A demoStep fills in one event of an item's history: its kind, signer and
// payload. Actor, Time, Item and Prev are set by the runner.
type demoStep struct {
	by    string
	kind  provenance.Kind
	place string
	fill  func(e *provenance.Event, d *demo) error
}

// demo enrolls the demo actors and writes the demo items' histories. It is
// idempotent: an actor enrolled already is skipped, and an item's history
// continues after the events it has.
type demo struct {
	node    *datadir.Node
	keyDir  string
	logger  *slog.Logger
	signers map[string]note.Signer
	code    string // the claim code of the pending buyer handoff, this run only
}

func (d *demo) run(ctx context.Context) ([]demoItem, error) {
	if err := os.MkdirAll(d.keyDir, 0o700); err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	d.signers = map[string]note.Signer{provenance.OperatorID: d.node.Operator}
	for _, a := range demoActors {
		s, vkey, err := merkle.LoadOrCreateKeyFile(filepath.Join(d.keyDir, a.ID+".key"), a.ID)
		if err != nil {
			return nil, err
		}
		d.signers[a.ID] = s
		switch _, err := d.node.Service.Actor(ctx, a.ID); {
		case err == nil:
			continue
		case !errors.Is(err, provenance.ErrNotFound):
			return nil, err
		}
		a.Key = vkey
		e := provenance.Event{Kind: provenance.KindEnroll, Actor: d.node.Operator.Name(), Time: now(), Enroll: &a}
		if _, err := d.submit(ctx, e); err != nil {
			return nil, fmt.Errorf("enroll %s: %w", a.ID, err)
		}
	}

	const maker, sz, hk, daigou = "demo-maker", "demo-courier-sz", "demo-courier-hk", "demo-daigou"
	register := func(product, lot string) demoStep {
		return demoStep{by: maker, kind: provenance.KindRegister, place: "Guangzhou", fill: func(e *provenance.Event, _ *demo) error {
			e.Register = &provenance.Register{Product: product, Lot: lot}
			return nil
		}}
	}
	handoff := func(by, to, place string) demoStep {
		return demoStep{by: by, kind: provenance.KindHandoff, place: place, fill: func(e *provenance.Event, _ *demo) error {
			e.Handoff = &provenance.Handoff{To: to}
			return nil
		}}
	}
	receive := func(by, place string) demoStep {
		return demoStep{by: by, kind: provenance.KindReceive, place: place, fill: func(e *provenance.Event, _ *demo) error {
			e.Receive = &provenance.Receive{By: by}
			return nil
		}}
	}
	items := []struct {
		serial, what string
		steps        []demoStep
	}{
		{"DEMO-DELIVERED", "delivered to a buyer by claim code", []demoStep{
			register("Classic tote bag", "L2026A"),
			handoff(maker, sz, "Guangzhou"), receive(sz, "Shenzhen"),
			handoff(sz, daigou, "Shenzhen"), receive(daigou, "Hong Kong"),
			{by: daigou, kind: provenance.KindHandoff, place: "Hong Kong", fill: func(e *provenance.Event, d *demo) error {
				code, h, err := provenance.NewClaim(rand.Reader)
				e.Handoff, d.code = &h, code
				return err
			}},
			{by: provenance.BuyerID, kind: provenance.KindReceive, place: "Shanghai", fill: func(e *provenance.Event, d *demo) error {
				if d.code == "" {
					return errSkip // the claim code was made by an earlier run that stopped
				}
				skey, vkey, err := merkle.GenerateKey(provenance.BuyerID)
				if err != nil {
					return err
				}
				if d.signers[provenance.BuyerID], err = note.NewSigner(skey); err != nil {
					return err
				}
				e.Receive, d.code = &provenance.Receive{ClaimCode: d.code, BuyerKey: vkey}, ""
				return nil
			}},
		}},
		{"DEMO-COURIER", "in custody of a courier", []demoStep{
			register("Leather card holder", "L2026B"),
			handoff(maker, sz, "Guangzhou"), receive(sz, "Shenzhen"),
		}},
		{"DEMO-TRANSIT", "in transit between couriers", []demoStep{
			register("Classic tote bag", "L2026A"),
			handoff(maker, sz, "Guangzhou"), receive(sz, "Shenzhen"),
			handoff(sz, hk, "Shenzhen"),
		}},
		{"DEMO-DISPUTED", "disputed by the daigou", []demoStep{
			register("Weekender duffel", "L2026C"),
			handoff(maker, hk, "Guangzhou"), receive(hk, "Hong Kong"),
			handoff(hk, daigou, "Hong Kong"), receive(daigou, "Hong Kong"),
			{by: daigou, kind: provenance.KindDispute, place: "Hong Kong", fill: func(e *provenance.Event, _ *demo) error {
				photo := sha256.Sum256([]byte("demo photo of a broken seal"))
				e.Dispute = &provenance.Dispute{Reason: "seal broken on arrival", Evidence: []string{hex.EncodeToString(photo[:])}}
				return nil
			}},
		}},
	}
	var out []demoItem
	for _, it := range items {
		id, err := provenance.NewItemID(demoGTIN, it.serial)
		if err != nil {
			return nil, err
		}
		if err := d.history(ctx, id, it.steps); err != nil {
			return nil, fmt.Errorf("item %s: %w", id, err)
		}
		out = append(out, demoItem{id: id, what: it.what})
	}
	return out, nil
}

// errSkip: a step that cannot be made in this run.
var errSkip = errors.New("skip")

// history writes the steps an item lacks.
func (d *demo) history(ctx context.Context, id provenance.ItemID, steps []demoStep) error {
	var last merkle.Hash
	done := 0
	switch v, err := d.node.Service.Item(ctx, id); {
	case err == nil:
		done, last = v.State.Events, v.State.Last
	case !errors.Is(err, provenance.ErrNotFound):
		return err
	}
	for _, st := range steps[min(done, len(steps)):] {
		e := provenance.Event{Kind: st.kind, Actor: st.by, Time: now(), Place: st.place, Item: id, Prev: last}
		if st.kind == provenance.KindRegister {
			e.Prev = merkle.Hash{}
		}
		if err := st.fill(&e, d); errors.Is(err, errSkip) {
			d.logger.Warn("demo: an item's claim code was lost when an earlier run stopped; its history stays in transit", "item", id.String())
			return nil
		} else if err != nil {
			return err
		}
		r, err := d.submit(ctx, e)
		if err != nil {
			return fmt.Errorf("%s by %s: %w", e.Kind, e.Actor, err)
		}
		last = r.LeafHash
	}
	return nil
}

func (d *demo) submit(ctx context.Context, e provenance.Event) (provenance.Receipt, error) {
	leaf, err := provenance.Sign(e, d.signers[e.Actor])
	if err != nil {
		return provenance.Receipt{}, err
	}
	return d.node.Service.Submit(ctx, leaf)
}

func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
