package provenance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// withText signs e, whose fields hold the placeholder "PLACEHOLDER", with
// the placeholder replaced by text, as a signer that skips Sign's checks
// would: the JSON stays canonical, so only the text rules can refuse it.
func withText(t testing.TB, e Event, kp keyPair, text string) []byte {
	t.Helper()
	if e.Time.IsZero() {
		e.Time = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC) // after the fixture's events
	}
	leaf, err := Sign(e, kp.signer)
	if err != nil {
		t.Fatal(err)
	}
	var quoted bytes.Buffer
	enc := json.NewEncoder(&quoted)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(text); err != nil {
		t.Fatal(err)
	}
	body := string(leaf[:bytes.LastIndex(leaf, []byte("\n\n"))+1])
	body = strings.Replace(body, "PLACEHOLDER", strings.TrimSuffix(strings.TrimSpace(quoted.String()), `"`)[1:], 1)
	out, err := note.Sign(&note.Note{Text: body}, kp.signer)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// textFieldEvents returns, for every free-text field of an event, an event
// holding "PLACEHOLDER" in that field alone, and the key that signs it.
func textFieldEvents(f *fixture) map[string]func() (Event, keyPair) {
	const ph = "PLACEHOLDER"
	return map[string]func() (Event, keyPair){
		"place": func() (Event, keyPair) {
			return Event{Kind: KindRegister, Actor: "acme", Item: itemY, Place: ph, Register: &Register{Product: "Bag"}}, f.key("acme")
		},
		"enroll.name": func() (Event, keyPair) {
			return Event{Kind: KindEnroll, Actor: OperatorID, Enroll: &Actor{ID: "newco", Role: RoleCourier, Name: ph, Key: f.key("newco").vkey}}, f.op
		},
		"revoke.reason": func() (Event, keyPair) {
			return Event{Kind: KindRevoke, Actor: OperatorID, Revoke: &Revoke{ID: "swift", Reason: ph}}, f.op
		},
		"register.product": func() (Event, keyPair) {
			return Event{Kind: KindRegister, Actor: "acme", Item: itemY, Register: &Register{Product: ph}}, f.key("acme")
		},
		"register.description": func() (Event, keyPair) {
			return Event{Kind: KindRegister, Actor: "acme", Item: itemY, Register: &Register{Product: "Bag", Description: ph}}, f.key("acme")
		},
		"dispute.reason": func() (Event, keyPair) {
			return Event{Kind: KindDispute, Actor: "acme", Item: itemX, Prev: f.prev(itemX), Dispute: &Dispute{Reason: ph}}, f.key("acme")
		},
		"ruling.decision": func() (Event, keyPair) {
			return Event{Kind: KindRuling, Actor: OperatorID, Item: itemX, Prev: f.prev(itemX), Ruling: &Ruling{Decision: ph}}, f.op
		},
	}
}

// TestTextRules puts each refused character into each free-text field of
// an event: the event is refused as malformed, with an *EventError naming
// the field and the character as U+XXXX, and the state is unchanged. Text
// in Chinese, Arabic and English mixed, with no control characters, is
// accepted in every field.
func TestTextRules(t *testing.T) {
	refused := []rune{
		0x00, 0x07, '\t', '\n', '\r', 0x1b, 0x7f, 0x85, 0x9f, // C0, DEL, C1
		0x2028, 0x2029, // line and paragraph separators
		0x202a, 0x202b, 0x202c, 0x202d, 0x202e, // bidi embeddings and overrides
		0x2066, 0x2067, 0x2068, 0x2069, // bidi isolates
		0x200b, 0x200c, 0x200d, 0x2060, 0xfeff, // zero-width
	}
	f := newFixture(t)
	base(f)
	for field, event := range textFieldEvents(f) {
		t.Run(field, func(t *testing.T) {
			for _, r := range refused {
				e, kp := event()
				leaf := withText(t, e, kp, "Acme "+string(r)+"Leather")
				before := dump(t, f.st)
				_, err := f.apply(leaf)
				var ee *EventError
				if !errors.As(err, &ee) || !errors.Is(err, ErrMalformedEvent) || ee.Field != field {
					t.Fatalf("%U: got %v, want a malformed event naming %s", r, err, field)
				}
				ruleErr(t, err, ErrMalformedEvent)
				if want := fmt.Sprintf("%U", r); !strings.Contains(err.Error(), want) {
					t.Errorf("%U: %q does not name the character as %s", r, err, want)
				}
				if after := dump(t, f.st); after != before {
					t.Fatalf("%U: a refused event changed the state", r)
				}
			}
			e, kp := event()
			leaf := withText(t, e, kp, "Acme 皮具 شركة الجلود Leather")
			if _, err := ParseEvent(leaf); err != nil {
				t.Fatalf("mixed zh/ar/en text refused: %v", err)
			}
		})
	}
	if _, err := ParseEvent(f.leaves[0]); err != nil {
		t.Fatal(err)
	}
}
