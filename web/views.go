package web

import (
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/templates"
)

// historyView turns an item's history into the history page's view.
func (s *Server) historyView(p templates.Page, v provenance.ItemView, scans uint64) templates.HistoryView {
	st := v.State
	id := v.Item
	actors := map[string]provenance.ActorState{}
	for _, a := range v.Actors {
		actors[a.ID] = a
	}
	proofs := map[uint64]provenance.BundleEntry{}
	for _, e := range v.Entries {
		proofs[e.Index] = e
	}
	info := func(actorID string, role provenance.Role, name string) templates.ActorInfo {
		switch {
		case actorID == provenance.BuyerID:
			return templates.ActorInfo{ID: actorID, Role: string(provenance.RoleBuyer)}
		case actorID == s.opID:
			return templates.ActorInfo{ID: actorID, Name: actorID, Role: string(provenance.RoleOperator), Verified: true}
		}
		ai := templates.ActorInfo{ID: actorID, Name: name, Role: string(role), URL: "/actors/" + actorID}
		if a, ok := actors[actorID]; ok {
			if ai.Name == "" {
				ai.Name = a.Name
			}
			if ai.Role == "" {
				ai.Role = string(a.Role)
			}
			ai.Verified = !a.Revoked
		}
		return ai
	}
	nameOf := func(actorID string) string {
		if a, ok := actors[actorID]; ok && a.Name != "" {
			return a.Name
		}
		return actorID
	}

	hv := templates.HistoryView{
		Page:         p,
		DigitalLink:  id.DigitalLink(s.cfg.BaseURL),
		GTIN:         id.GTIN,
		Serial:       id.Serial,
		Product:      st.Product,
		Lot:          st.Lot,
		Description:  st.Description,
		Manufacturer: info(st.RegisteredBy, provenance.RoleManufacturer, ""),
		Custodian:    info(st.Custodian, "", ""),
		DeliveredOn:  st.Delivered,
		Scans:        scans,
		Checkpoint: templates.CheckpointInfo{
			Origin: v.Checkpoint.Origin, Size: v.Checkpoint.Size,
			Root: v.Checkpoint.Root.String(), Note: string(v.Checkpoint.Note),
		},
		Keys:      keysInfo(s.cfg.Service.Trust()),
		BundleURL: "/api/v1/items/" + id.GTIN + "/" + pathSerial(id) + "/bundle",
		EPCISURL:  id.DigitalLink("") + "?linkType=gs1:traceability",
		QRURL:     "/qr" + id.DigitalLink("") + ".svg",
		Item:      id.String(),
		Prev:      st.Last.String(),
		Status:    string(st.Status),
	}
	switch st.Status {
	case provenance.StatusDelivered:
		hv.Verdict = templates.VerdictDelivered
	case provenance.StatusDisputed:
		hv.Verdict = templates.VerdictDisputed
		if st.Dispute != nil {
			hv.DisputeNote = st.Dispute.Reason
		}
	default:
		hv.Verdict = templates.VerdictGenuine
	}
	if p := st.Pending; p != nil {
		hv.Pending = true
		if p.To == "" {
			hv.PendingClaim = true
		} else {
			hv.InTransitTo = nameOf(p.To)
		}
	}
	for _, he := range v.Events {
		e := he.Event
		row := templates.EventRow{
			Index: he.Index,
			Time:  e.Time,
			Kind:  string(e.Kind),
			Actor: info(e.Actor, he.Role, he.ActorName),
			Place: e.Place,
			Proof: templates.ProofInfo{LeafIndex: he.Index, LeafHash: he.LeafHash.String()},
		}
		for _, h := range proofs[he.Index].Proof {
			row.Proof.Hashes = append(row.Proof.Hashes, h.String())
		}
		switch {
		case e.Register != nil:
			row.Detail = e.Register.Product
		case e.Handoff != nil && e.Handoff.To != "":
			row.To = nameOf(e.Handoff.To)
		case e.Handoff != nil:
			row.To = templates.T(p.Lang, "a.buyer.claim")
		case e.Dispute != nil:
			row.Detail = e.Dispute.Reason
		case e.Ruling != nil:
			row.Detail = e.Ruling.Decision
		}
		hv.Events = append(hv.Events, row)
	}
	return hv
}

func keysInfo(t provenance.Trust) templates.KeysInfo {
	return templates.KeysInfo{Origin: t.Origin, LogKey: t.LogKey, OperatorKey: t.OperatorKey}
}
