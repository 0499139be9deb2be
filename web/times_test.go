package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
)

// TestPostEventTimes posts events whose times the rules refuse: each is
// answered 422 with its own code and a message that gives the times
// involved, and nothing is appended.
func TestPostEventTimes(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "TIME1")
	scenario(e, id, "Bag")
	last := e.time // the time of the courier's receive, the item's latest event
	enrolledAt := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	future := time.Now().UTC().Add(provenance.MaxClockSkew + time.Hour).Truncate(time.Second)

	handoffAt := func(at time.Time) []byte {
		return e.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: "courier", Item: id, Prev: e.last(id), Time: at,
			Handoff: &provenance.Handoff{To: "maker"}}, e.keys["courier"])
	}
	for _, tc := range []struct {
		name string
		leaf []byte
		code string
		says []string // what the message must say
	}{
		{"in the future", handoffAt(future), "time_in_future", []string{future.Format(time.RFC3339), "5m0s"}},
		{"before the previous event", handoffAt(last.Add(-time.Second)), "time_before_previous",
			[]string{last.Add(-time.Second).Format(time.RFC3339), last.Format(time.RFC3339), "previous event"}},
		{"before the signer's enrollment", e.sign(provenance.Event{Kind: provenance.KindRegister, Actor: "maker",
			Item: mustItem(t, gtin, "TIME2"), Time: enrolledAt.Add(-time.Minute),
			Register: &provenance.Register{Product: "Bag"}}, e.keys["maker"]), "time_before_enrollment",
			[]string{enrolledAt.Add(-time.Minute).Format(time.RFC3339), enrolledAt.Format(time.RFC3339), "enrollment"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.checkpointSize()
			resp, err := http.Post(e.srv.URL+"/api/v1/events", "text/plain", bytes.NewReader(tc.leaf))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ae apiErr
			if err := json.NewDecoder(resp.Body).Decode(&ae); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnprocessableEntity || ae.Error.Code != tc.code {
				t.Errorf("%d %+v, want 422 %s", resp.StatusCode, ae, tc.code)
			}
			t.Logf("%d %s", resp.StatusCode, ae.Error.Message)
			for _, s := range tc.says {
				if !strings.Contains(ae.Error.Message, s) {
					t.Errorf("message %q does not say %q", ae.Error.Message, s)
				}
			}
			if after := e.checkpointSize(); after != before {
				t.Errorf("log grew from %d to %d", before, after)
			}
		})
	}
	// At the previous event's very time: accepted.
	e.ok(handoffAt(last))
}
