package provenance

import (
	"encoding/json"
	"errors"
	"testing"
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
