package provenance

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"
)

func FuzzParseEvent(f *testing.F) {
	w := bundleWorld(f)
	for _, leaf := range w.leaves {
		f.Add(leaf)
	}
	f.Add([]byte(EventHeader + "\n{}\n\n\u2014 acme AAAAAAAA\n"))
	for _, leaf := range w.leaves[:3] {
		f.Add(otherBase64(leaf))
		f.Add(bytes.Replace(leaf, []byte("\n\n"), []byte("\n\n\n"), 1))
		f.Add(append(slices.Clone(leaf), leaf[bytes.LastIndex(leaf, []byte("\n\n"))+2:]...))
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		e, err := ParseEvent(leaf)
		if err != nil {
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("error %v does not match ErrMalformedEvent", err)
			}
			return
		}
		// What parses is what Sign would write.
		if _, err := e.wire(); err != nil {
			t.Fatalf("parsed an event Sign refuses: %v", err)
		}
		if e.Kind.IsItemEvent() != !e.Item.IsZero() {
			t.Fatalf("%s event with item %q", e.Kind, e.Item)
		}
		// One signed event, one leaf: the text and the signature give the
		// leaf back, byte for byte.
		_, sig, err := parseLeaf(leaf)
		if err != nil {
			t.Fatalf("ParseEvent accepts what parseLeaf refuses: %v", err)
		}
		if again := formatLeaf(leaf[:sig.text], e.Actor, sig); !bytes.Equal(again, leaf) {
			t.Fatalf("leaf %q parses to a signature that is written %q", leaf, again)
		}
	})
}

// formatLeaf writes an event note as note.Sign does: the text, a blank
// line, and one signature line with the canonical base64 of the key hash
// and the signature.
func formatLeaf(text []byte, name string, sig leafSig) []byte {
	raw := binary.BigEndian.AppendUint32(nil, sig.keyHash)
	raw = append(raw, sig.sig[:]...)
	return fmt.Appendf(bytes.Clone(text), "\n\u2014 %s %s\n", name, base64.StdEncoding.EncodeToString(raw))
}

func FuzzApply(f *testing.F) {
	w := bundleWorld(f)
	for _, leaf := range w.leaves {
		f.Add(leaf)
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		st := w.st.Clone()
		before := dump(t, st)
		if _, err := st.Apply(st.Next(), leaf); err != nil {
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RuleError", err)
			}
			if dump(t, st) != before {
				t.Fatal("refused leaf changed the state")
			}
		}
	})
}

func FuzzVerifyBundle(f *testing.F) {
	l := smallLog(f)
	f.Add(l.bundle(f, itemX))
	f.Add(l.bundle(f, itemY))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Pin the keys the bundle names, to reach past the key check;
		// signatures by other keys still fail.
		var bj bundleJSON
		_ = json.Unmarshal(b, &bj)
		trust := Trust{Origin: bj.Origin, LogKey: bj.LogKey, OperatorKey: bj.OperatorKey}
		h, err := VerifyBundle(b, trust)
		if err != nil {
			if !errors.Is(err, ErrBadBundle) {
				t.Fatalf("error %v does not match ErrBadBundle", err)
			}
			return
		}
		if len(h.Events) == 0 || h.Events[0].Event.Kind != KindRegister {
			t.Fatalf("verified a history without its register event")
		}
	})
}

// FuzzDecodeBundle checks the bundle's one byte form: what decodeBundle
// accepts, encodeBundle writes back byte for byte; anything else is
// refused with an error matching ErrMalformedBundle.
func FuzzDecodeBundle(f *testing.F) {
	l := smallLog(f)
	b := l.bundle(f, itemX)
	f.Add(b)
	f.Add(l.bundle(f, itemY))
	f.Add(bytes.Replace(b, []byte(`"index": 0`), []byte(`"index": 00`), 1))
	f.Add(bytes.Replace(b, []byte("\n  ]\n}\n"), []byte("\n  ],\n  \"x\": 1\n}\n"), 1))
	f.Add([]byte("{}"))
	for _, s := range trickyStrings {
		b, err := encodeBundle(bundleJSON{Format: s, Origin: s, Item: s, Checkpoint: s,
			Entries: []entryJSON{{Index: 1, Leaf: []byte(s), Proof: s}}})
		if !utf8.ValidString(s) {
			continue // refused by encodeBundle, as TestDecodeBundleRoundTrip checks
		}
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeBundle(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedBundle) {
				t.Fatalf("error %v does not match ErrMalformedBundle", err)
			}
			return
		}
		again, err := encodeBundle(got)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("decoded %q as %+v, which encodes as %q (%v)", b, got, again, err)
		}
	})
}

// trickyStrings are strings encoding/json escapes in its own ways.
var trickyStrings = []string{
	"", "plain", "line\nbreak", "quote \" and \\ backslash", "tab\there", "bell\a",
	"<html> & co", "em \u2014 dash", "line sep \u2028 para \u2029", "replacement \ufffd",
	"bad utf-8 \xff\xfe", "del \x7f", "nul \x00", "\b\f\r", "emoji \U0001F600",
}

// TestDecodeBundleRoundTrip encodes bundles holding tricky strings and
// decodes them back: what decodes is what encoding/json reads, and a
// bundle is refused exactly when encoding that does not give it back.
func TestDecodeBundleRoundTrip(t *testing.T) {
	for _, s := range trickyStrings {
		in := bundleJSON{Format: s, Origin: s, LogKey: s, OperatorKey: s, Item: s, Checkpoint: s,
			Entries: []entryJSON{{Index: 0, Leaf: []byte(s), Proof: s}, {Index: 1 << 63, Leaf: []byte{}, Proof: s}}}
		b, err := encodeBundle(in)
		if !utf8.ValidString(s) {
			if err == nil {
				t.Errorf("encoded a bundle holding %q, which is not UTF-8", s)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// The bundle's byte form is encoding/json's Encoder's, which
		// bundles written before encodeBundle moved to encoding/json/v2
		// are in.
		var v1 bytes.Buffer
		enc := json.NewEncoder(&v1)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(in); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, v1.Bytes()) {
			t.Errorf("%q: encodeBundle wrote\n%s\nencoding/json's Encoder writes\n%s", s, b, v1.Bytes())
		}
		var want bundleJSON
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		canon, err := encodeBundle(want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeBundle(b)
		switch {
		case !bytes.Equal(canon, b):
			if !errors.Is(err, ErrMalformedBundle) {
				t.Errorf("%q: decoded a bundle that is not canonical: %v", s, err)
			}
		case err != nil:
			t.Errorf("%q: %v", s, err)
		case !reflect.DeepEqual(got, want):
			t.Errorf("%q: decoded %+v, want %+v", s, got, want)
		}
	}
}

// FuzzDecodeEventText checks the event JSON's one byte form: what
// decodeEventText accepts is what Sign writes for the event it decodes.
func FuzzDecodeEventText(f *testing.F) {
	w := bundleWorld(f)
	for _, leaf := range w.leaves {
		_, line, _ := bytes.Cut(leaf, []byte("\n"))
		line, _, _ = bytes.Cut(line, []byte("\n"))
		f.Add(string(line))
	}
	for _, s := range trickyStrings {
		b, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		q := string(b)
		f.Add(`{"kind":"dispute","actor":` + q + `,"time":"x","place":` + q + `,"dispute":{"reason":` + q + `,"evidence":[` + q + `,` + q + `]}}`)
		f.Add(`{"kind":"handoff","actor":"a","time":"t","handoff":{"claim":` + q + `,"salt":"s"}}`)
	}
	f.Add(`{"kind":"receive","actor":"a","time":"t","receive":{}}`)
	f.Add(`{"kind":"x","actor":"a","time":"t","place":""}`)
	f.Add(`{"kind":"x","actor":"a","time":"t","dispute":{"reason":"r","evidence":[]}}`)
	f.Add(`{"kind":"x","actor":"a","time":"t","enroll":{"id":"i","role":"r","name":"n","key":"k"},"ruling":{"decision":"d"}}`)
	f.Fuzz(func(t *testing.T, line string) {
		text := EventHeader + "\n" + line + "\n"
		e, err := decodeEventText([]byte(text))
		if err != nil {
			if !errors.Is(err, ErrMalformedEvent) {
				t.Fatalf("error %v does not match ErrMalformedEvent", err)
			}
			return
		}
		w, err := e.wire()
		if err != nil {
			t.Fatalf("decoded an event Sign refuses: %v", err)
		}
		var canon bytes.Buffer
		enc := json.NewEncoder(&canon)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(w); err != nil || canon.String() != line+"\n" {
			t.Fatalf("decoded %q, which Sign writes %q (%v)", line, canon.String(), err)
		}
	})
}
