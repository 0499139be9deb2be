package provenance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestEPCIS(t *testing.T) {
	l := smallLog(t)
	h, err := VerifyBundle(l.bundle(t, itemX), l.trust)
	if err != nil {
		t.Fatal(err)
	}
	doc := EPCIS(h, "https://id.example.com/", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC))
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Context []json.RawMessage `json:"@context"`
		Type    string            `json:"type"`
		Body    struct {
			EventList []map[string]any `json:"eventList"`
		} `json:"epcisBody"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "EPCISDocument" || string(got.Context[0]) != `"`+EPCISContext+`"` {
		t.Fatalf("document header: %s", b[:200])
	}
	want := []string{
		"ADD commissioning active",
		"OBSERVE shipping in_transit",
		"OBSERVE receiving in_progress",
		"OBSERVE shipping in_transit",
		"OBSERVE receiving in_progress",
		"OBSERVE shipping in_transit",
		"OBSERVE shipping in_transit",
		"OBSERVE accepting retail_sold",
		"OBSERVE inspecting <nil>",
		"OBSERVE inspecting <nil>",
	}
	if len(got.Body.EventList) != len(want) {
		t.Fatalf("%d events, want %d", len(got.Body.EventList), len(want))
	}
	for i, e := range got.Body.EventList {
		line := strings.Join([]string{str(e["action"]), str(e["bizStep"]), str(e["disposition"])}, " ")
		if line != want[i] {
			t.Errorf("event %d: %s, want %s", i, line, want[i])
		}
		if e["type"] != "ObjectEvent" || e["epcList"].([]any)[0] != "https://id.example.com/01/09506000134352/21/X1" {
			t.Errorf("event %d: %v", i, e)
		}
		if _, err := time.Parse(time.RFC3339, str(e["eventTime"])); err != nil {
			t.Errorf("event %d: eventTime %v", i, e["eventTime"])
		}
	}
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return "<nil>"
}
