package templates_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/a-h/templ"
	"github.com/provtrail/provtrail/templates"
)

func render(t *testing.T, c templ.Component) (*goquery.Document, string) {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Render(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	d, err := goquery.NewDocumentFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return d, buf.String()
}

const evil = `<script>alert(1)</script>`

func history(kind templates.VerdictKind, lang templates.Lang) templates.HistoryView {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	maker := templates.ActorInfo{ID: "maker", Name: "Maker " + evil, Role: "manufacturer", Verified: true, URL: "/actors/maker"}
	return templates.HistoryView{
		Page:         templates.Page{Lang: lang, Title: "History", Path: "/01/09506000134352/21/S1"},
		Verdict:      kind,
		GTIN:         "09506000134352",
		Serial:       `S<1>`,
		Product:      "Bag " + evil,
		Lot:          "L1",
		Description:  "desc " + evil,
		Manufacturer: maker,
		Custodian:    templates.ActorInfo{ID: "courier", Name: "Courier " + evil, Role: "courier"},
		DeliveredOn:  at,
		DisputeNote:  "reason " + evil,
		Events: []templates.EventRow{
			{Index: 1, Time: at, Kind: "register", Actor: maker, Place: "City " + evil, Detail: "Bag " + evil,
				Proof: templates.ProofInfo{LeafIndex: 1, LeafHash: "aGFzaA==", Hashes: []string{"c2li"}}},
			{Index: 2, Time: at, Kind: "handoff", Actor: maker, To: "Courier " + evil},
		},
		Scans:     7,
		Keys:      templates.KeysInfo{Origin: "o", LogKey: "lk", OperatorKey: "ok"},
		BundleURL: "/api/v1/items/09506000134352/S1/bundle",
		Item:      "01/09506000134352/21/S1",
	}
}

func TestHistoryPageVerdicts(t *testing.T) {
	for _, tc := range []struct {
		kind templates.VerdictKind
		lang templates.Lang
		want string
	}{
		{templates.VerdictGenuine, templates.English, "Genuine and in the custody of Courier " + evil},
		{templates.VerdictDelivered, templates.English, "Delivered to its buyer on 1 March 2026. If someone is selling you this as new, it may be a copy."},
		{templates.VerdictDisputed, templates.English, "reason " + evil},
		{templates.VerdictGenuine, templates.Chinese, "正品，目前由 Courier " + evil + " 保管。"},
		{templates.VerdictDelivered, templates.Chinese, "已于 2026年3月1日 交付给买家"},
	} {
		t.Run(string(tc.kind)+"-"+string(tc.lang), func(t *testing.T) {
			d, html := render(t, templates.HistoryPage(history(tc.kind, tc.lang)))
			if strings.Contains(html, "<script>alert") {
				t.Fatal("user text not escaped")
			}
			v := d.Find(`[data-testid="verdict"]`)
			if k, _ := v.Attr("data-verdict"); k != string(tc.kind) {
				t.Errorf("data-verdict %q", k)
			}
			if !strings.Contains(v.Text(), tc.want) {
				t.Errorf("verdict %q lacks %q", v.Text(), tc.want)
			}
			if n := d.Find(`[data-testid="event"]`).Length(); n != 2 {
				t.Errorf("%d event rows", n)
			}
			if d.Find(`[data-testid="scans"]`).Text() != "7" {
				t.Error("scan count")
			}
			if got := d.Find(`[data-testid="product"]`).Text(); got != "Bag "+evil {
				t.Errorf("product %q", got)
			}
			if d.Find(`[data-testid="manufacturer-badge"]`).Length() != 1 {
				t.Error("no manufacturer badge")
			}
			if bu, _ := d.Find(`[data-testid="verify"]`).Attr("data-bundle-url"); bu != "/api/v1/items/09506000134352/S1/bundle" {
				t.Errorf("bundle url %q", bu)
			}
		})
	}
}

func TestLanguageSwitch(t *testing.T) {
	v := history(templates.VerdictGenuine, templates.Chinese)
	v.Query = "item=x"
	d, _ := render(t, templates.HistoryPage(v))
	sw := d.Find(`[data-testid="lang-switch"]`)
	if href, _ := sw.Attr("href"); href != "/01/09506000134352/21/S1?item=x&lang=en" || sw.Text() != "English" {
		t.Errorf("switch %q %q", href, sw.Text())
	}
	if lang, _ := d.Find("html").Attr("lang"); lang != "zh-Hans" {
		t.Errorf("html lang %q", lang)
	}
	if !strings.Contains(d.Find(".timeline").Parent().Text(), "流转记录") {
		t.Error("timeline heading not in Chinese")
	}
}

func TestProblemPages(t *testing.T) {
	d, html := render(t, templates.ProblemPage(templates.ProblemView{Page: templates.Page{Lang: templates.English},
		Verdict: templates.VerdictInvalid, Input: evil, Reason: "check digit is 3, expected 2"}))
	if strings.Contains(html, "<script>alert") {
		t.Fatal("input not escaped")
	}
	if !strings.Contains(d.Find(`[data-testid="verdict"]`).Text(), "check digit is 3, expected 2") {
		t.Error("reason missing")
	}
	d, _ = render(t, templates.ProblemPage(templates.ProblemView{Page: templates.Page{Lang: templates.Chinese},
		Verdict: templates.VerdictUnregistered}))
	if !strings.Contains(d.Find(`[data-testid="verdict"]`).Text(), "该商品可能是假冒的") {
		t.Error("zh unregistered verdict")
	}
}

func TestCourierAndForms(t *testing.T) {
	h := history(templates.VerdictGenuine, templates.English)
	h.Pending, h.InTransitTo = true, "Courier"
	d, _ := render(t, templates.CourierPage(templates.CourierView{Page: templates.Page{Lang: templates.English}, Item: &h}))
	for _, id := range []string{"scanner-video", "scan-upload", "enroll", "handoff-form", "receive-form"} {
		if d.Find(`[data-testid="`+id+`"]`).Length() != 1 {
			t.Errorf("no %s", id)
		}
	}
	// goquery parses <noscript> as text, as a browser with scripting does.
	if !strings.Contains(d.Find("noscript").Text(), "Signing needs JavaScript") {
		t.Error("no JavaScript notice")
	}
	if accept, _ := d.Find(`[data-testid="scan-upload"]`).Attr("accept"); accept != "image/*" {
		t.Errorf("accept %q", accept)
	}
	for _, name := range []string{"item", "to", "claim"} {
		if d.Find(`[data-testid="handoff-form"] [name="`+name+`"]`).Length() != 1 {
			t.Errorf("handoff form lacks %s", name)
		}
	}
	d, _ = render(t, templates.ManufacturerPage(templates.ManufacturerView{Page: templates.Page{Lang: templates.Chinese}}))
	for _, name := range []string{"gtin", "product", "lot", "count"} {
		if d.Find(`[data-testid="register-form"] [name="`+name+`"]`).Length() != 1 {
			t.Errorf("register form lacks %s", name)
		}
	}
}

func TestEveryKeyTranslated(t *testing.T) {
	for _, key := range []string{"v.genuine", "vs.delivered", "needs.js", "verify.button", "download"} {
		if templates.T(templates.Chinese, key) == templates.T(templates.English, key) {
			t.Errorf("%s is not translated", key)
		}
	}
}
