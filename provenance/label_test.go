package provenance

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func labelVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestLabelRoundTrip(t *testing.T) {
	maker := newKey(t, "acme")
	id := ItemID{GTIN: "09506000134352", Serial: "7Q3M8ZK2C4XH1R6A"}
	sig, err := SignLabel(id, maker.signer)
	if err != nil {
		t.Fatal(err)
	}
	if len(sig) != LabelSigLen || len(sig) > 90 {
		t.Fatalf("signature %q has %d characters, want %d (AI 8030 allows 90)", sig, len(sig), LabelSigLen)
	}
	if _, err := ParseLabelSignature(sig); err != nil {
		t.Fatal(err)
	}
	if err := VerifyLabel(id, sig, labelVerifier(t, maker.vkey)); err != nil {
		t.Fatalf("VerifyLabel of a fresh signature: %v", err)
	}
	// The signature is a C2SP signed note over LabelText: the full note,
	// rebuilt with the key hash, opens with note.Open.
	raw, _ := base64.RawURLEncoding.DecodeString(sig)
	v := labelVerifier(t, maker.vkey)
	full := append([]byte{byte(v.KeyHash() >> 24), byte(v.KeyHash() >> 16), byte(v.KeyHash() >> 8), byte(v.KeyHash())}, raw...)
	msg := LabelText(id) + "\n\u2014 acme " + base64.StdEncoding.EncodeToString(full) + "\n"
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if n.Text != "provtrail-label/v1\n01/09506000134352/21/7Q3M8ZK2C4XH1R6A\n" {
		t.Fatalf("note text %q", n.Text)
	}

	link := LabelLink(id, "https://id.example.com/", sig)
	if want := "https://id.example.com/01/09506000134352/21/7Q3M8ZK2C4XH1R6A?8030=" + sig; link != want {
		t.Fatalf("LabelLink = %q, want %q", link, want)
	}
	gotID, gotSig, err := ParseLabelLink(link)
	if err != nil || gotID != id || gotSig != sig {
		t.Fatalf("ParseLabelLink(%q) = %v, %q, %v", link, gotID, gotSig, err)
	}
	if _, s, err := ParseLabelLink(id.DigitalLink("https://x.example")); err != nil || s != "" {
		t.Fatalf("ParseLabelLink without 8030 = %q, %v", s, err)
	}
	// A serial that needs percent-encoding signs its decoded form.
	odd := ItemID{GTIN: "09506000134352", Serial: "A/B%C"}
	sig2, err := SignLabel(odd, maker.signer)
	if err != nil {
		t.Fatal(err)
	}
	gotID, gotSig, err = ParseLabelLink(LabelLink(odd, "https://x.example", sig2))
	if err != nil || gotID != odd || VerifyLabel(gotID, gotSig, v) != nil {
		t.Fatalf("round trip of %v: %v %q %v", odd, gotID, gotSig, err)
	}
}

func TestLabelRefused(t *testing.T) {
	maker := newKey(t, "acme")
	other := newKey(t, "acme") // same name, another key
	thief := newKey(t, "copycat")
	id := ItemID{GTIN: "09506000134352", Serial: "SERIAL1"}
	sig, err := SignLabel(id, maker.signer)
	if err != nil {
		t.Fatal(err)
	}
	thiefSig, err := SignLabel(id, thief.signer)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(sig)
	if flipped[10] == 'A' {
		flipped[10] = 'B'
	} else {
		flipped[10] = 'A'
	}
	v := labelVerifier(t, maker.vkey)
	for _, tc := range []struct {
		name string
		id   ItemID
		sig  string
		v    note.Verifier
		want string
	}{
		{"wrong-item", ItemID{GTIN: id.GTIN, Serial: "SERIAL2"}, sig, v, "not acme's signature over 01/09506000134352/21/SERIAL2"},
		{"wrong-key", id, sig, labelVerifier(t, other.vkey), "not acme's signature"},
		{"other-signer", id, thiefSig, v, "not acme's signature"},
		{"tampered", id, string(flipped), v, "not acme's signature"},
		{"short", id, sig[:85], v, "85 characters, want 86"},
		{"long", id, sig + "A", v, "87 characters"},
		{"padded", id, sig[:84] + "==", v, "'=' at position 85"},
		{"std-base64", id, strings.Repeat("+", 86), v, "'+' at position 1"},
		{"empty", id, "", v, "0 characters"},
		{"no-item", ItemID{}, sig, v, "no item"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyLabel(tc.id, tc.sig, tc.v)
			if !errors.Is(err, ErrBadLabel) {
				t.Fatalf("VerifyLabel = %v, want ErrBadLabel", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyLabel = %q, want it to say %q", err, tc.want)
			}
		})
	}

	for _, in := range []string{
		"https://x.example/01/09506000134352/21/S?8030=" + sig + "&8030=" + sig,
		"https://x.example/01/09506000134352/21/S?8030=short",
		"https://x.example/01/09506000134352/21/S?8030=%zz",
	} {
		if _, _, err := ParseLabelLink(in); !errors.Is(err, ErrBadLabel) {
			t.Errorf("ParseLabelLink(%q) = %v, want ErrBadLabel", in, err)
		}
	}
	if _, _, err := ParseLabelLink("https://x.example/01/09506000134353/21/S?8030=" + sig); !errors.Is(err, ErrBadDigitalLink) {
		t.Errorf("ParseLabelLink with a bad check digit = %v, want ErrBadDigitalLink", err)
	}
}

func TestLabelKey(t *testing.T) {
	st := ItemState{RegisteredBy: "acme", Registered: 10}
	a := ActorState{Actor: Actor{ID: "acme", Key: "k3"}, Keys: []KeyWindow{
		{Key: "k1", From: 1, To: 5, Revoked: true},
		{Key: "k2", From: 6, To: 12, Revoked: true},
		{Key: "k3", From: 13},
	}}
	if got := LabelKey(st, a); got != "k2" {
		t.Errorf("LabelKey at 10 = %q, want k2 (the key that registered it)", got)
	}
	st.Registered = 20
	if got := LabelKey(st, a); got != "k3" {
		t.Errorf("LabelKey at 20 = %q, want k3", got)
	}
	st.RegisteredBy = "other"
	if got := LabelKey(st, a); got != "" {
		t.Errorf("LabelKey of another actor = %q, want none", got)
	}
}
