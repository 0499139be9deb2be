package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/provtrail/provtrail/provenance"
)

// TestPostEventText posts events whose free text holds characters the
// rules refuse (signed, in canonical JSON): each is answered 400
// malformed_event with a message naming the field and the character as
// U+XXXX, and nothing is appended.
func TestPostEventText(t *testing.T) {
	e := newEnv(t, false)
	id := mustItem(t, gtin, "TEXT1")
	scenario(e, id, "Bag")
	at := time.Now().UTC().Format(time.RFC3339) // after every event of the scenario
	register := func(serial, product, place string) []byte {
		return signText(t, `{"kind":"register","actor":"maker","time":"`+at+`","place":"`+place+`","item":"01/`+gtin+`/21/`+serial+
			`","register":{"product":"`+product+`"}}`, e.keys["maker"])
	}
	for _, tc := range []struct {
		name  string
		leaf  []byte
		field string
		char  string
	}{
		{"right-to-left override in a product", register("T2", "Bag \u202egnirts", "Shenzhen"), "register.product", "U+202E"},
		{"left-to-right isolate in a place", register("T3", "Bag", "\u2066Shenzhen\u2069"), "place", "U+2066"},
		{"zero-width joiner in a product", register("T4", "Ba\u200dg", "Shenzhen"), "register.product", "U+200D"},
		{"byte order mark in a place", register("T5", "Bag", "\ufeffShenzhen"), "place", "U+FEFF"},
		{"newline in a product", register("T6", `Bag\nline two`, "Shenzhen"), "register.product", "U+000A"},
		{"C1 control in a dispute reason", signText(t, `{"kind":"dispute","actor":"courier","time":"`+at+`","item":"01/`+gtin+
			`/21/TEXT1","prev":"`+e.last(id).String()+`","dispute":{"reason":"torn`+"\u0085"+`strap"}}`, e.keys["courier"]), "dispute.reason", "U+0085"},
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
			t.Logf("%d %s", resp.StatusCode, ae.Error.Message)
			if resp.StatusCode != http.StatusBadRequest || ae.Error.Code != "malformed_event" ||
				!strings.Contains(ae.Error.Message, tc.field+": ") || !strings.Contains(ae.Error.Message, tc.char) {
				t.Errorf("%d %+v, want 400 malformed_event naming %s and %s", resp.StatusCode, ae, tc.field, tc.char)
			}
			if after := e.checkpointSize(); after != before {
				t.Errorf("log grew from %d to %d", before, after)
			}
		})
	}
	// Chinese, Arabic and English mixed, with no control characters: fine.
	e.ok(register("T7", "手袋 حقيبة Handbag", "迪拜 Dubai دبي"))
}

// TestHistoryPageIsolatesText serves the history page of an item whose
// names, product and places mix Arabic, Chinese and English: each shows in
// a <bdi>, the verdict sentence's name too, so none reorders its line.
func TestHistoryPageIsolatesText(t *testing.T) {
	e := newEnv(t, false)
	const (
		maker   = "شركة الجلود Leather 皮具"
		courier = "شحن سريع Express 快递"
		product = "حقيبة يد Handbag 手袋"
		place   = "دبي Dubai 迪拜"
	)
	id := mustItem(t, gtin, "BIDI1")
	e.enroll("maker", provenance.RoleManufacturer, maker)
	e.enroll("courier", provenance.RoleCourier, courier)
	e.ok(e.registerLeaf("maker", id, product, place))
	e.ok(e.handoffLeaf("maker", id, provenance.Handoff{To: "courier"}))
	e.ok(e.receiveLeaf("courier", id, place))

	for _, lang := range []string{"en", "zh"} {
		resp, body := e.get(id.DigitalLink("") + "?lang=" + lang)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		d := doc(t, body)
		isolated := map[string]int{}
		d.Find("bdi").Each(func(_ int, s *goquery.Selection) { isolated[s.Text()]++ })
		for _, s := range []string{maker, courier, product, place} {
			if isolated[s] == 0 {
				t.Errorf("%s: %q is in no <bdi>", lang, s)
			}
		}
		if got := d.Find(`[data-testid="verdict"] .verdict-text bdi`).Text(); got != courier {
			t.Errorf("%s: the verdict isolates %q, want the custodian %q", lang, got, courier)
		}
	}
}
