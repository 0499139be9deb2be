package provenance

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func FuzzParseEvent(f *testing.F) {
	w := bundleWorld(f)
	for _, leaf := range w.leaves {
		f.Add(leaf)
	}
	f.Add([]byte(EventHeader + "\n{}\n\n\u2014 acme AAAAAAAA\n"))
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
	})
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

// FuzzDecodeBundle checks decodeBundle's fast path against the slow one
// (encoding/json, then re-encoding must give the same bytes): whatever the
// fast path accepts, the slow path accepts too, with the same decoding.
// The slow path may accept more (it is the fallback).
func FuzzDecodeBundle(f *testing.F) {
	l := smallLog(f)
	f.Add(l.bundle(f, itemX))
	f.Add(l.bundle(f, itemY))
	f.Add([]byte("{}"))
	for _, s := range trickyStrings {
		b, err := encodeBundle(bundleJSON{Format: s, Origin: s, Item: s, Checkpoint: s,
			Entries: []entryJSON{{Index: 1, Leaf: []byte(s), Proof: s}}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeCanonical(b)
		if !ok {
			return
		}
		var slow bundleJSON
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path decoded %+v, encoding/json %+v", fast, slow)
		}
		canon, err := encodeBundle(slow)
		if err != nil || !bytes.Equal(canon, b) {
			t.Fatalf("fast path accepted a bundle not in canonical form (%v)", err)
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
// decodes them back, through the fast path where it applies.
func TestDecodeBundleRoundTrip(t *testing.T) {
	for _, s := range trickyStrings {
		in := bundleJSON{Format: s, Origin: s, LogKey: s, OperatorKey: s, Item: s, Checkpoint: s,
			Entries: []entryJSON{{Index: 0, Leaf: []byte(s), Proof: s}, {Index: 1 << 63, Leaf: []byte{}, Proof: s}}}
		b, err := encodeBundle(in)
		if err != nil {
			t.Fatal(err)
		}
		// What encoding/json makes of it: invalid UTF-8 becomes U+FFFD,
		// which encodes differently, so that one is not canonical.
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
			if err == nil {
				t.Errorf("%q: decoded a bundle that is not canonical", s)
			}
		case err != nil:
			t.Errorf("%q: %v", s, err)
		case !reflect.DeepEqual(got, want):
			t.Errorf("%q: decoded %+v, want %+v", s, got, want)
		}
	}
	// Real bundles take the fast path.
	l := smallLog(t)
	if _, ok := decodeCanonical(l.bundle(t, itemX)); !ok {
		t.Error("a bundle BuildBundle wrote did not take the fast path")
	}
}

// FuzzDecodeEventCanonical checks the event JSON's fast path against
// encoding/json: whatever decodeEventCanonical accepts, encoding/json
// decodes alike (no unknown fields, nothing after), and re-encoding gives
// the same bytes, as Sign writes them.
func FuzzDecodeEventCanonical(f *testing.F) {
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
		fast, ok := decodeEventCanonical([]byte(line))
		if !ok {
			return
		}
		var slow wireEvent
		dec := json.NewDecoder(bytes.NewReader([]byte(line)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("fast path accepted what encoding/json refuses: %v", err)
		}
		if dec.More() {
			t.Fatalf("fast path accepted trailing data")
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("fast path decoded %+v, encoding/json %+v", fast, slow)
		}
		var canon bytes.Buffer
		enc := json.NewEncoder(&canon)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(slow); err != nil || canon.String() != line+"\n" {
			t.Fatalf("fast path accepted %q, not in canonical form %q (%v)", line, canon.String(), err)
		}
	})
}

// TestDecodeEventCanonicalTaken checks events as Sign writes them take the
// fast path, each kind of them.
func TestDecodeEventCanonicalTaken(t *testing.T) {
	w := bundleWorld(t)
	kinds := map[Kind]bool{}
	for _, leaf := range w.leaves {
		_, line, _ := bytes.Cut(leaf, []byte("\n"))
		line, _, _ = bytes.Cut(line, []byte("\n"))
		got, ok := decodeEventCanonical(line)
		if !ok {
			t.Errorf("event %s takes the slow path", line)
			continue
		}
		kinds[got.Kind] = true
	}
	for _, k := range []Kind{KindEnroll, KindRevoke, KindRegister, KindHandoff, KindReceive, KindDispute, KindRuling} {
		if !kinds[k] {
			t.Errorf("no %s event among the test events", k)
		}
	}
}

// FuzzParseOneSigNote checks the note parser's fast path against
// note.Open: whatever parseOneSigNote accepts, note.Open parses to the
// same text and the same one signature.
func FuzzParseOneSigNote(f *testing.F) {
	w := bundleWorld(f)
	for _, leaf := range w.leaves {
		f.Add(leaf)
		f.Add(bytes.Replace(leaf, []byte("\n\n"), []byte("\n\n\n"), 1))
		f.Add(append(slices.Clone(leaf), leaf[bytes.LastIndex(leaf, []byte("\n\n"))+2:]...))
	}
	f.Add([]byte("text\n\n\u2014 a+b AAAA\n"))
	f.Add([]byte("t\u00e9xt\r\n\n\u2014 name " + strings.Repeat("A", 92) + "\n"))
	f.Fuzz(func(t *testing.T, leaf []byte) {
		sig, name, ok := parseOneSigNote(leaf)
		if !ok {
			return
		}
		_, err := note.Open(leaf, noVerifiers)
		var unverified *note.UnverifiedNoteError
		if !errors.As(err, &unverified) {
			t.Fatalf("fast path parsed what note.Open refuses: %v", err)
		}
		n := unverified.Note
		if len(n.UnverifiedSigs) != 1 {
			t.Fatalf("fast path found one signature, note.Open %+v", n.UnverifiedSigs)
		}
		want := n.UnverifiedSigs[0]
		raw, err := base64.StdEncoding.DecodeString(want.Base64)
		if err != nil || n.Text != string(leaf[:sig.text]) || want.Name != name || want.Hash != sig.keyHash || string(raw[4:]) != string(sig.sig[:]) {
			t.Fatalf("fast path found %q %q %08x %x, note.Open %q %+v", leaf[:sig.text], name, sig.keyHash, sig.sig, n.Text, want)
		}
	})
}

// TestParseOneSigNoteTaken checks event leaves as Sign writes them take the
// note parser's fast path.
func TestParseOneSigNoteTaken(t *testing.T) {
	w := bundleWorld(t)
	for _, leaf := range w.leaves {
		if _, _, ok := parseOneSigNote(leaf); !ok {
			t.Errorf("leaf %q takes the slow path", leaf)
		}
	}
}
