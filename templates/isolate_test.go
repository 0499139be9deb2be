package templates_test

import (
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/provtrail/provtrail/templates"
)

// isolated returns the texts of the elements that isolate user text: every
// <bdi>, and every element whose direction is its own text's (dir="auto").
func isolated(d *goquery.Document) map[string]bool {
	out := map[string]bool{}
	d.Find("bdi, [dir=auto]").Each(func(_ int, s *goquery.Selection) { out[s.Text()] = true })
	return out
}

// TestUserTextIsolated renders the pages that show user text (the history
// page in both verdicts that quote it, the courier's item panel, an
// actor's page and a label sheet) with names, places, products and reasons
// in Arabic, Hebrew, Chinese and English, and checks each is the whole
// text of an isolating element, so that it keeps its own direction and
// does not reorder the sentence or line around it.
func TestUserTextIsolated(t *testing.T) {
	const (
		maker    = "شركة الجلود Leather 皮具"
		courier  = "שליח מהיר Courier"
		receiver = "وكيل Daigou 代购"
		product  = "حقيبة يد Handbag 手袋"
		lot      = "L-2026/03"
		desc     = "جلد طبيعي, tan leather, 真皮"
		place    = "دبي Dubai 迪拜"
		reason   = "الخياطة مختلفة stitching differs 缝线不同"
	)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	makerInfo := templates.ActorInfo{ID: "maker", Name: maker, Role: "manufacturer", Verified: true, URL: "/actors/maker"}
	courierInfo := templates.ActorInfo{ID: "courier", Name: courier, Role: "courier"}
	events := []templates.EventRow{
		{Index: 1, Time: at, Kind: "register", Actor: makerInfo, Place: place, Detail: product},
		{Index: 2, Time: at, Kind: "handoff", Actor: makerInfo, To: receiver},
		{Index: 3, Time: at, Kind: "dispute", Actor: courierInfo, Place: place, Detail: reason},
	}
	h := templates.HistoryView{
		Page: templates.Page{Lang: templates.English, Title: "History"}, Verdict: templates.VerdictGenuine,
		GTIN: "09506000134352", Serial: "S1", Product: product, Lot: lot, Description: desc,
		Manufacturer: makerInfo, Custodian: courierInfo, DisputeNote: reason, Events: events,
		Item: "01/09506000134352/21/S1", BundleURL: "/b",
		Label: &templates.LabelCheck{OK: true, Manufacturer: maker},
	}
	for _, lang := range []templates.Lang{templates.English, templates.Chinese} {
		h.Lang = lang
		d, _ := render(t, templates.HistoryPage(h))
		got := isolated(d)
		for _, s := range []string{product, lot, desc, maker, courier, receiver, place, reason} {
			if !got[s] {
				t.Errorf("history page (%s): %q is not isolated", lang, s)
			}
		}
		// The verdict sentence holds the custodian's name: isolated there
		// too, and the sentence reads as before.
		v := d.Find(`[data-testid="verdict"] .verdict-text`)
		if v.Find("bdi").Text() != courier || !strings.Contains(v.Text(), courier) {
			t.Errorf("history page (%s): verdict %q does not isolate %q", lang, v.Text(), courier)
		}
		if d.Find(`[data-testid="label-verdict"] bdi`).Text() != maker {
			t.Errorf("history page (%s): the label's signer is not isolated", lang)
		}
	}

	disputed := h
	disputed.Lang, disputed.Verdict = templates.English, templates.VerdictDisputed
	d, _ := render(t, templates.HistoryPage(disputed))
	if got := d.Find(`[data-testid="verdict"] .verdict-text bdi`).Text(); got != reason {
		t.Errorf("disputed verdict isolates %q, want the reason", got)
	}

	transit := h
	transit.Lang, transit.Pending, transit.InTransitTo = templates.English, true, receiver
	d, _ = render(t, templates.CourierPage(templates.CourierView{Page: templates.Page{Lang: templates.English}, Item: &transit}))
	got := isolated(d)
	for _, s := range []string{product, courier, receiver} {
		if !got[s] {
			t.Errorf("courier page: %q is not isolated", s)
		}
	}

	d, _ = render(t, templates.ActorPage(templates.ActorView{Page: templates.Page{Lang: templates.English}, Actor: makerInfo,
		Events: events, EventsListed: true}))
	got = isolated(d)
	for _, s := range []string{maker, place, reason} {
		if !got[s] {
			t.Errorf("actor page: %q is not isolated", s)
		}
	}

	d, _ = render(t, templates.LabelsPage(templates.LabelsView{Page: templates.Page{Lang: templates.English},
		Labels: []templates.Label{{DigitalLink: "https://id.example.com/01/09506000134352/21/S1", Product: product, GTIN: "09506000134352", Serial: "S1"}}}))
	if !isolated(d)[product] {
		t.Errorf("label sheet: %q is not isolated", product)
	}
}
