package assets

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/provenance"
	"golang.org/x/mod/sumdb/note"
)

// eventServer stands in for the web API: it answers the item lookup with
// a fixed prev and records every event note POSTed.
type eventServer struct {
	mu      sync.Mutex
	posted  [][]byte
	batches int // batch requests answered
	prev    merkle.Hash
}

func (s *eventServer) routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/items/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"prev": s.prev.String()})
	})
	mux.HandleFunc("POST /api/v1/events/batch", s.batchRoute)
	mux.HandleFunc("POST /api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			fmt.Fprint(w, `{"error":{"code":"bad_type","message":"want text/plain"}}`)
			return
		}
		if strings.Contains(string(body), "refuse-me") {
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"code":"not_custodian","message":"not the custodian <b>x</b>"}}`)
			return
		}
		s.mu.Lock()
		s.posted = append(s.posted, body)
		n := len(s.posted)
		s.mu.Unlock()
		fmt.Fprintf(w, `{"index":%d,"leaf_hash":"x"}`, 100+n)
	})
}

// batchRoute answers POST /api/v1/events/batch as the web API does: one
// result per event, refusing the notes that hold "refuse-me".
func (s *eventServer) batchRoute(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	var req struct {
		Events []string `json:"events"`
	}
	if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.Events) == 0 || len(req.Events) > 1000 {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"bad_request","message":"not a batch"}}`)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches++
	var results []string
	for _, ev := range req.Events {
		if strings.Contains(ev, "refuse-me") {
			results = append(results, `{"status":403,"error":{"code":"wrong_role","message":"not a manufacturer <b>x</b>"}}`)
			continue
		}
		s.posted = append(s.posted, []byte(ev))
		results = append(results, fmt.Sprintf(`{"status":201,"receipt":{"index":%d,"leaf_hash":"x"}}`, 100+len(s.posted)))
	}
	fmt.Fprintf(w, `{"results":[%s]}`, strings.Join(results, ","))
}

// take returns the notes posted since the last call.
func (s *eventServer) take() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.posted
	s.posted = nil
	return p
}

// fillAndSubmit sets the named fields of a form (checkboxes by "true"),
// clears its previous outcome and clicks its submit button.
func fillAndSubmit(form string, fields map[string]string) chromedp.Action {
	arg, _ := json.Marshal(map[string]any{"form": form, "fields": fields})
	return chromedp.Tasks{
		chromedp.Evaluate(`(a => {
			const f = document.querySelector('[data-testid=' + a.form + ']');
			for (const [k, v] of Object.entries(a.fields)) {
				const el = f.elements.namedItem(k);
				if (el.type === 'checkbox') el.checked = v === 'true'; else el.value = v;
			}
			const out = f.querySelector('output');
			delete out.dataset.ok;
			return true;
		})(`+string(arg)+`)`, nil),
		chromedp.Click(`[data-testid=`+form+`] button`, chromedp.ByQuery),
	}
}

// outcome waits for a form's result and returns data-ok and its text.
func outcome(form, result string, ok, text *string) chromedp.Action {
	sel := `[data-testid=` + form + `] [data-testid=` + result + `]`
	return chromedp.Tasks{
		chromedp.WaitVisible(sel+`[data-ok]`, chromedp.ByQuery),
		chromedp.AttributeValue(sel, "data-ok", ok, nil, chromedp.ByQuery),
		chromedp.Text(sel, text, chromedp.ByQuery),
	}
}

// TestSign makes a key in the browser, signs every kind of event the forms
// make, and checks each note in Go with sumdb/note and provenance's parser.
func TestSign(t *testing.T) {
	const digitalLink = "https://id.example.com/01/09506000134352/21/A%2FB"
	wantItem := provenance.ItemID{GTIN: "09506000134352", Serial: "A/B"}
	es := &eventServer{prev: merkle.LeafHash([]byte("the item's previous event"))}
	srv := newServer(t, func(*http.Request) any { return map[string]string{"Item": digitalLink} }, es.routes)
	ctx := newTab(t)

	var vkey string
	err := chromedp.Run(ctx,
		chromedp.Navigate(srv.URL+"/t/sign"),
		chromedp.SetValue(`[data-testid=enroll-form] input[name=id]`, "swift-phone", chromedp.ByQuery),
		chromedp.Click(`[data-testid=enroll-form] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid=enroll-key][data-ok=true]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid=enroll-key]`, &vkey, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	actorKey, err := note.NewVerifier(vkey)
	if err != nil || actorKey.Name() != "swift-phone" {
		t.Fatalf("enroll-key %q: verifier %v, err %v", vkey, actorKey, err)
	}

	// submit runs one form and returns the one event note it posted.
	submit := func(t *testing.T, form, result string, fields map[string]string) (leaf []byte, text string) {
		t.Helper()
		var ok string
		if err := chromedp.Run(ctx, fillAndSubmit(form, fields), outcome(form, result, &ok, &text)); err != nil {
			t.Fatal(err)
		}
		posted := es.take()
		if ok != "true" || len(posted) != 1 {
			t.Fatalf("%s: data-ok = %q, %d notes posted; result: %s", form, ok, len(posted), text)
		}
		return posted[0], text
	}
	// check verifies a note with sumdb/note and provenance.VerifyEvent.
	check := func(t *testing.T, leaf []byte, v note.Verifier, kind provenance.Kind) provenance.Event {
		t.Helper()
		if _, err := note.Open(leaf, note.VerifierList(v)); err != nil {
			t.Fatalf("note.Open: %v\n%s", err, leaf)
		}
		e, err := provenance.VerifyEvent(leaf, v)
		if err != nil {
			t.Fatalf("provenance.VerifyEvent: %v\n%s", err, leaf)
		}
		if e.Kind != kind || e.Item != wantItem || e.Prev != es.prev {
			t.Fatalf("event %s of %v prev %v, want %s of %v prev %v", e.Kind, e.Item, e.Prev, kind, wantItem, es.prev)
		}
		return e
	}

	t.Run("handoff-to-actor", func(t *testing.T) {
		leaf, text := submit(t, "handoff-form", "handoff-result", map[string]string{"to": "corner-shop", "claim": "false", "place": "Hong Kong"})
		e := check(t, leaf, actorKey, provenance.KindHandoff)
		if e.Actor != "swift-phone" || e.Handoff.To != "corner-shop" || e.Place != "Hong Kong" {
			t.Errorf("handoff %+v %+v", e, e.Handoff)
		}
		if !strings.Contains(text, "index 101") {
			t.Errorf("result %q does not give the receipt index", text)
		}
	})

	var claimCode string
	t.Run("handoff-by-claim", func(t *testing.T) {
		leaf, _ := submit(t, "handoff-form", "handoff-result", map[string]string{"to": "", "claim": "true", "place": ""})
		e := check(t, leaf, actorKey, provenance.KindHandoff)
		if err := chromedp.Run(ctx, chromedp.Text(`[data-testid=claim-code]`, &claimCode, chromedp.ByQuery)); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{20}$`).MatchString(claimCode) {
			t.Errorf("claim code %q is not 20 Crockford base32 characters", claimCode)
		}
		salt, _ := base64.StdEncoding.DecodeString(e.Handoff.Salt)
		sum := provenance.ClaimHash(salt, claimCode)
		if e.Handoff.To != "" || len(salt) != provenance.MinSaltLen || base64.StdEncoding.EncodeToString(sum[:]) != e.Handoff.Claim {
			t.Errorf("handoff %+v does not commit to claim code %q", e.Handoff, claimCode)
		}
	})

	t.Run("receive", func(t *testing.T) {
		leaf, _ := submit(t, "receive-form", "receive-result", map[string]string{"place": "Shenzhen"})
		e := check(t, leaf, actorKey, provenance.KindReceive)
		if e.Receive.By != "swift-phone" {
			t.Errorf("receive %+v", e.Receive)
		}
	})

	t.Run("dispute-by-actor", func(t *testing.T) {
		typed := `Seal broken <b>&amp; "box"` + "\n\ncrushed – 盒子\u2028ok"
		reason := `Seal broken <b>&amp; "box" crushed – 盒子 ok` // line breaks become spaces
		leaf, _ := submit(t, "dispute-form", "dispute-result", map[string]string{"reason": typed})
		e := check(t, leaf, actorKey, provenance.KindDispute)
		if e.Actor != "swift-phone" || e.Dispute.Reason != reason {
			t.Errorf("dispute %q by %s, want %q", e.Dispute.Reason, e.Actor, reason)
		}
	})

	// What the server refuses in event text is refused before signing,
	// naming the character: nothing is posted.
	t.Run("dispute-refused-text", func(t *testing.T) {
		for typed, char := range map[string]string{"Seal \u202ebroken": "U+202E", "Seal\u200bbroken": "U+200B", "\u2066Seal\u2069": "U+2066"} {
			var ok, text string
			if err := chromedp.Run(ctx, fillAndSubmit("dispute-form", map[string]string{"reason": typed}),
				outcome("dispute-form", "dispute-result", &ok, &text)); err != nil {
				t.Fatal(err)
			}
			if posted := es.take(); ok != "false" || len(posted) != 0 || !strings.Contains(text, char) {
				t.Errorf("reason %+q: data-ok %q, %d posted, result %q; want refused naming %s", typed, ok, len(posted), text, char)
			}
		}
	})

	t.Run("buyer-claim-receive", func(t *testing.T) {
		leaf, _ := submit(t, "claim-form", "claim-result", map[string]string{"claim": " " + strings.ToLower(claimCode) + " "})
		e, err := provenance.ParseEvent(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if e.Actor != provenance.BuyerID || e.Receive == nil || e.Receive.ClaimCode != claimCode {
			t.Fatalf("buyer receive %+v %+v, want claim code %q", e, e.Receive, claimCode)
		}
		buyerKey, err := note.NewVerifier(e.Receive.BuyerKey)
		if err != nil {
			t.Fatal(err)
		}
		check(t, leaf, buyerKey, provenance.KindReceive)

		// The buyer's dispute is signed with the same one-off key.
		leaf, _ = submit(t, "dispute-form", "dispute-result", map[string]string{"reason": "Not as described"})
		if d := check(t, leaf, buyerKey, provenance.KindDispute); d.Actor != provenance.BuyerID {
			t.Errorf("dispute after the claim is by %q, want the buyer", d.Actor)
		}
	})

	t.Run("register", func(t *testing.T) {
		fields := map[string]string{"gtin": "9506000134352", "product": `Handbag <Classic> "Ré"`, "lot": "L-2026/03",
			"description": "", "place": "Shenzhen", "count": "3"}
		var ok, text string
		if err := chromedp.Run(ctx, fillAndSubmit("register-form", fields), outcome("register-form", "register-result", &ok, &text)); err != nil {
			t.Fatal(err)
		}
		posted := es.take()
		if ok != "true" || len(posted) != 3 {
			t.Fatalf("data-ok %q, %d posted: %s", ok, len(posted), text)
		}
		serials := map[string]bool{}
		for _, leaf := range posted {
			e, err := provenance.VerifyEvent(leaf, actorKey)
			if err != nil {
				t.Fatalf("%v\n%s", err, leaf)
			}
			if e.Kind != provenance.KindRegister || e.Item.GTIN != "09506000134352" || e.Register.Product != fields["product"] ||
				e.Register.Lot != "L-2026/03" || e.Register.Description != "" || e.Place != "Shenzhen" {
				t.Errorf("register %+v %+v", e, e.Register)
			}
			if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{16}$`).MatchString(e.Item.Serial) {
				t.Errorf("serial %q is not 16 Crockford base32 characters", e.Item.Serial)
			}
			serials[e.Item.Serial] = true
		}
		if len(serials) != 3 || !strings.HasPrefix(text, "Registered 3 of 3 items") {
			t.Errorf("serials %v; result %q", serials, text)
		}

		// 250 items go in three batches; a refused batch says why.
		es.mu.Lock()
		es.batches = 0
		es.mu.Unlock()
		fields["count"] = "250"
		if err := chromedp.Run(ctx, fillAndSubmit("register-form", fields), outcome("register-form", "register-result", &ok, &text)); err != nil {
			t.Fatal(err)
		}
		es.mu.Lock()
		batches := es.batches
		es.mu.Unlock()
		if posted := es.take(); ok != "true" || len(posted) != 250 || batches != 3 || !strings.HasPrefix(text, "Registered 250 of 250 items") {
			t.Errorf("250 items: data-ok %q, %d posted in %d batches: %s", ok, len(posted), batches, text)
		}
		fields["count"], fields["product"] = "5", "refuse-me"
		if err := chromedp.Run(ctx, fillAndSubmit("register-form", fields), outcome("register-form", "register-result", &ok, &text)); err != nil {
			t.Fatal(err)
		}
		if posted := es.take(); ok != "false" || len(posted) != 0 || text != "Registered 0 of 5 items; refused: not a manufacturer <b>x</b>" {
			t.Errorf("a refused batch: data-ok %q, %d posted, result %q", ok, len(posted), text)
		}
	})

	t.Run("refusal-shown", func(t *testing.T) {
		var ok, text string
		err := chromedp.Run(ctx, fillAndSubmit("dispute-form", map[string]string{"reason": "refuse-me"}),
			outcome("dispute-form", "dispute-result", &ok, &text))
		if err != nil {
			t.Fatal(err)
		}
		if ok != "false" || text != "Refused: not the custodian <b>x</b>" {
			t.Errorf("data-ok %q, result %q: want the server's message, as text", ok, text)
		}
	})

	t.Run("key-survives-reload-and-is-not-extractable", func(t *testing.T) {
		var after, exported string
		var extractable bool
		err := chromedp.Run(ctx,
			chromedp.Reload(),
			chromedp.Poll(`document.querySelector('[data-testid=enroll-key]').textContent.includes('+')`, nil),
			chromedp.Text(`[data-testid=enroll-key]`, &after, chromedp.ByQuery),
			evalAsync(`provtrailSign.loadSigner().then(s => s.keyPair.privateKey.extractable)`, &extractable),
			evalAsync(`provtrailSign.loadSigner().then(s => crypto.subtle.exportKey('pkcs8', s.keyPair.privateKey))
				.then(() => 'exported', e => 'refused: ' + e.name)`, &exported),
		)
		if err != nil {
			t.Fatal(err)
		}
		if after != vkey {
			t.Errorf("after reload the key is %q, want %q", after, vkey)
		}
		if extractable || exported != "refused: InvalidAccessError" {
			t.Errorf("private key extractable = %v; exportKey: %s", extractable, exported)
		}
	})
}
