package provenance

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseDigitalLink(t *testing.T) {
	good := []struct {
		in   string
		want ItemID
	}{
		{"https://id.example.com/01/09506000134352/21/ABC123", ItemID{"09506000134352", "ABC123"}},
		{"/01/09506000134352/21/ABC123", ItemID{"09506000134352", "ABC123"}},
		{"HTTP://id.example.com/resolve/01/09506000134352/21/ABC123?8030=xyz#top", ItemID{"09506000134352", "ABC123"}},
		{"https://x.example/01/9506000134352/21/1", ItemID{"09506000134352", "1"}},         // GTIN-13
		{"https://x.example/01/036000291452/21/s", ItemID{"00036000291452", "s"}},          // GTIN-12
		{"https://x.example/01/96385074/21/s", ItemID{"00000096385074", "s"}},              // GTIN-8
		{"/01/09506000134352/21/a%2Fb%25c%22", ItemID{"09506000134352", `a/b%c"`}},         // encoded / % "
		{"/01/09506000134352/21/%2541", ItemID{"09506000134352", "%41"}},                   // decoded once only
		{"/01/09506000134352/21/!'()*+,-.:;=_", ItemID{"09506000134352", "!'()*+,-.:;=_"}}, // sub-delims may be bare
		{"/01/09506000134352/21/ABCDEFGHIJ0123456789", ItemID{"09506000134352", "ABCDEFGHIJ0123456789"}},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDigitalLink(tc.in)
			if err != nil {
				t.Fatalf("ParseDigitalLink: %v", err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			// Canonical URI round-trips.
			back, err := ParseDigitalLink(got.DigitalLink("https://id.example.com/"))
			if err != nil || back != got {
				t.Fatalf("round trip of %s: %+v, %v", got.DigitalLink("https://id.example.com/"), back, err)
			}
			back, err = ParseItemID(got.String())
			if err != nil || back != got {
				t.Fatalf("ParseItemID(%q) = %+v, %v", got.String(), back, err)
			}
		})
	}
	bad := []struct{ in, reason string }{
		{"https://x.example/01/09506000134353/21/A", "check digit is 3, expected 2"},
		{"/01/09506000134352/21/ABCDEFGHIJ0123456789X", "serial has 21 characters, at most 20"},
		{"/01/09506000134352/21/a%23b", "character '#' not allowed in serial"},
		{"/01/09506000134352/21/a%20b", "character ' ' not allowed in serial"},
		{"/01/09506000134352/21/%C3%A9", "character 'é' not allowed in serial"},
		{"/01/09506000134352/21/%FF", "byte 0xff not allowed in serial"},
		{"/01/09506000134352/21/", "serial is empty"},
		{"/01/09506000134352/21/a/b", `path does not end in "/01/{gtin}/21/{serial}"`},
		{"/01/0950600013435/21/a", "GTIN has 13 digits... "},
		{"/01/095060001343A2/21/a", `GTIN has 'A' at position 13, want only digits`},
		{"/01/123456789/21/a", "GTIN has 9 digits, want 8, 12, 13 or 14"},
		{"/01/09506000134352/21/a%zz", `bad percent-encoding "%zz"`},
		{"ftp://x.example/01/09506000134352/21/a", "scheme must be http or https"},
		{"01/09506000134352/21/a", "a bare path must start with /01/"},
		{"https:///01/09506000134352/21/a", "no host"},
		{"https://u:p@x.example/01/09506000134352/21/a", "user information is not allowed"},
		{"/10/LOT/21/a", `path does not end in "/01/{gtin}/21/{serial}"`},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseDigitalLink(tc.in)
			var dle *DigitalLinkError
			if !errors.As(err, &dle) || !errors.Is(err, ErrBadDigitalLink) {
				t.Fatalf("ParseDigitalLink(%q) = %v, want a *DigitalLinkError", tc.in, err)
			}
			if !strings.HasSuffix(tc.reason, "... ") && dle.Reason != tc.reason {
				t.Errorf("reason %q, want %q", dle.Reason, tc.reason)
			}
		})
	}
}

func TestCheckDigit(t *testing.T) {
	for _, tc := range []struct {
		digits string
		want   byte
	}{{"0950600013435", '2'}, {"9638507", '4'}, {"03600029145", '2'}, {"0000000000000", '0'}} {
		if got := CheckDigit(tc.digits); got != tc.want {
			t.Errorf("CheckDigit(%s) = %c, want %c", tc.digits, got, tc.want)
		}
	}
}

func TestDigitalLinkEncodesSerial(t *testing.T) {
	id := ItemID{GTIN: "09506000134352", Serial: `A/b%"c-._`}
	if got, want := id.DigitalLink("https://id.example.com"), "https://id.example.com/01/09506000134352/21/A%2Fb%25%22c-._"; got != want {
		t.Fatalf("DigitalLink = %s, want %s", got, want)
	}
}

func TestNewSerial(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s, err := NewSerial(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 16 || seen[s] {
			t.Fatalf("serial %q: wrong length or repeated", s)
		}
		seen[s] = true
		if _, err := NewItemID("09506000134352", s); err != nil {
			t.Fatal(err)
		}
		if id := (ItemID{"09506000134352", s}); id.DigitalLink("") != "/01/09506000134352/21/"+s {
			t.Fatalf("serial %q needs percent-encoding", s)
		}
	}
	if _, err := NewSerial(bytes.NewReader(nil)); err == nil {
		t.Fatal("NewSerial with an empty reader succeeded")
	}
}

func ExampleParseDigitalLink() {
	id, err := ParseDigitalLink("https://id.example.com/01/9506000134352/21/A%2F7")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(id.GTIN, id.Serial)
	fmt.Println(id)
	fmt.Println(id.DigitalLink("https://id.example.com"))

	_, err = ParseDigitalLink("https://id.example.com/01/09506000134353/21/A7")
	fmt.Println(err)
	// Output:
	// 09506000134352 A/7
	// 01/09506000134352/21/A/7
	// https://id.example.com/01/09506000134352/21/A%2F7
	// bad GS1 Digital Link "https://id.example.com/01/09506000134353/21/A7": check digit is 3, expected 2
}

func FuzzParseDigitalLink(f *testing.F) {
	for _, s := range []string{
		"https://id.example.com/01/09506000134352/21/ABC123",
		"/01/9506000134352/21/a%2Fb",
		"/01/96385074/21/%25%2541",
		"https://x/01/036000291452/21/!'()*+,-.:;=_?8030=a",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseDigitalLink(s)
		if err != nil {
			if !errors.Is(err, ErrBadDigitalLink) {
				t.Fatalf("error %v does not match ErrBadDigitalLink", err)
			}
			return
		}
		if len(id.GTIN) != 14 || CheckDigit(id.GTIN[:13]) != id.GTIN[13] {
			t.Fatalf("bad GTIN %q accepted", id.GTIN)
		}
		back, err := ParseDigitalLink(id.DigitalLink("https://id.example.com"))
		if err != nil || back != id {
			t.Fatalf("canonical link of %+v does not round-trip: %+v, %v", id, back, err)
		}
		back, err = ParseItemID(id.String())
		if err != nil || back != id {
			t.Fatalf("ParseItemID(%q) = %+v, %v", id, back, err)
		}
	})
}

// TestItemKey checks the in-place map key of an item: one key per valid
// ItemID, and one key no valid ItemID has for every malformed one, so that
// a lookup with a malformed ID finds nothing.
func TestItemKey(t *testing.T) {
	valid := []ItemID{
		{GTIN: "09506000134352", Serial: "X1"},
		{GTIN: "09506000134352", Serial: "X10"},
		{GTIN: "09506000134352", Serial: "x1"},
		{GTIN: "00000000000000", Serial: "X1"},
		{GTIN: "99999999999999", Serial: strings.Repeat("z", MaxSerialLen)},
		{GTIN: "09506000134369", Serial: "X1"},
	}
	seen := map[itemKey]ItemID{}
	for _, id := range valid {
		k := id.key()
		if k == badItemKey {
			t.Errorf("%v: the malformed ID's key", id)
		}
		if other, ok := seen[k]; ok {
			t.Errorf("%v and %v share a key", id, other)
		}
		seen[k] = id
	}
	malformed := []ItemID{
		{},
		{GTIN: "0950600013435", Serial: "X1"},
		{GTIN: "095060001343520", Serial: "X1"},
		{GTIN: "0950600013435a", Serial: "X1"},
		{GTIN: "09506000134352"},
		{GTIN: "09506000134352", Serial: strings.Repeat("z", MaxSerialLen+1)},
		{GTIN: "09506000134352", Serial: "X\x00"},
	}
	for _, id := range malformed {
		if id.key() != badItemKey {
			t.Errorf("%q: key %v, want the malformed ID's key", id, id.key())
		}
	}

	f := newFixture(t)
	f.ok(f.enrollLeaf("acme", RoleManufacturer))
	f.ok(f.registerLeaf("acme", itemX))
	if _, ok := f.st.Item(itemX); !ok {
		t.Fatal("registered item not found")
	}
	for _, id := range append(malformed, ItemID{GTIN: itemX.GTIN, Serial: itemX.Serial + "\x00"}) {
		if _, ok := f.st.Item(id); ok {
			t.Errorf("malformed ID %q found an item", id)
		}
	}
}
