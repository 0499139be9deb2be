package provenance

import (
	"strings"
	"time"
)

// EPCISContext is the JSON-LD context of EPCIS 2.0 documents.
const EPCISContext = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

// An EPCISDocument is an EPCIS 2.0 document in its JSON-LD form. Marshal it
// with encoding/json.
type EPCISDocument struct {
	Context       []any     `json:"@context"`
	Type          string    `json:"type"`
	SchemaVersion string    `json:"schemaVersion"`
	CreationDate  string    `json:"creationDate"`
	Body          EPCISBody `json:"epcisBody"`
}

// EPCISBody is the body of an EPCISDocument.
type EPCISBody struct {
	EventList []EPCISObjectEvent `json:"eventList"`
}

// An EPCISObjectEvent is an EPCIS 2.0 ObjectEvent, with the CBV short
// names for bizStep and disposition, and provtrail extension fields that
// tie it to the log.
type EPCISObjectEvent struct {
	Type                string   `json:"type"`
	EventTime           string   `json:"eventTime"`
	EventTimeZoneOffset string   `json:"eventTimeZoneOffset"`
	EPCList             []string `json:"epcList"`
	Action              string   `json:"action"`
	BizStep             string   `json:"bizStep,omitempty"`
	Disposition         string   `json:"disposition,omitempty"`

	Kind     Kind   `json:"provtrail:kind"`
	Actor    string `json:"provtrail:actor"`
	Role     Role   `json:"provtrail:role"`
	Place    string `json:"provtrail:place,omitempty"` // coarse (a city); not an SGLN, so not a readPoint
	To       string `json:"provtrail:to,omitempty"`    // a handoff's named receiver
	LogIndex uint64 `json:"provtrail:logIndex"`
	LeafHash string `json:"provtrail:leafHash"`
}

// EPCIS exports a verified History as an EPCIS 2.0 JSON-LD document of
// ObjectEvents, one per event of the item, naming the item by its GS1
// Digital Link URI under base (e.g. "https://id.gs1.org"). The provtrail
// extension namespace is base + "/ns/epcis#".
//
// Mapping (CBV short names): register: ADD, commissioning, active;
// handoff: OBSERVE, shipping, in_transit; receive by an actor: OBSERVE,
// receiving, in_progress; receive by a buyer: OBSERVE, accepting,
// retail_sold; dispute and ruling: OBSERVE, inspecting, no disposition.
// No place is exported as readPoint or bizLocation: places are coarse city
// names, not location identifiers; they appear as provtrail:place.
func EPCIS(h History, base string, created time.Time) EPCISDocument {
	base = strings.TrimRight(base, "/")
	doc := EPCISDocument{
		Context:       []any{EPCISContext, map[string]string{"provtrail": base + "/ns/epcis#"}},
		Type:          "EPCISDocument",
		SchemaVersion: "2.0",
		CreationDate:  created.UTC().Format(time.RFC3339),
		Body:          EPCISBody{EventList: []EPCISObjectEvent{}},
	}
	epc := h.Item.DigitalLink(base)
	for _, he := range h.Events {
		e := he.Event
		oe := EPCISObjectEvent{
			Type:                "ObjectEvent",
			EventTime:           e.Time.UTC().Format(time.RFC3339),
			EventTimeZoneOffset: "+00:00",
			EPCList:             []string{epc},
			Action:              "OBSERVE",
			Kind:                e.Kind,
			Actor:               e.Actor,
			Role:                he.Role,
			Place:               e.Place,
			LogIndex:            he.Index,
			LeafHash:            he.LeafHash.String(),
		}
		switch e.Kind {
		case KindRegister:
			oe.Action, oe.BizStep, oe.Disposition = "ADD", "commissioning", "active"
		case KindHandoff:
			oe.BizStep, oe.Disposition, oe.To = "shipping", "in_transit", e.Handoff.To
		case KindReceive:
			oe.BizStep, oe.Disposition = "receiving", "in_progress"
			if he.Role == RoleBuyer {
				oe.BizStep, oe.Disposition = "accepting", "retail_sold"
			}
		case KindDispute, KindRuling:
			oe.BizStep = "inspecting"
		}
		doc.Body.EventList = append(doc.Body.EventList, oe)
	}
	return doc
}
