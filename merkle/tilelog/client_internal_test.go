package tilelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

func FuzzParseEntryBundle(f *testing.F) {
	f.Add([]byte("\x00\x01a\x00\x02bc"), 2)
	f.Add([]byte("\x00\x05ab"), 1)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, w int) {
		leaves, err := parseEntryBundle(b, w)
		if err != nil {
			return
		}
		// What parses is w entries that encode back to b.
		if len(leaves) != w {
			t.Fatalf("%d entries, want %d", len(leaves), w)
		}
		var again []byte
		for _, l := range leaves {
			again = binary.BigEndian.AppendUint16(again, uint16(len(l)))
			again = append(again, l...)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("entries %q do not encode back to %q", leaves, b)
		}
	})
}

// FuzzVerify feeds Client.Verify any bytes as a checkpoint: it never
// panics, and every error is one of the two kinds a Mirror tells apart.
func FuzzVerify(f *testing.F) {
	skey, vkey, err := merkle.GenerateKey("fuzz.test/log")
	if err != nil {
		f.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	cp, err := merkle.SignCheckpoint(s, "fuzz.test/log", 7, merkle.LeafHash([]byte("x")))
	if err != nil {
		f.Fatal(err)
	}
	c, err := NewClient(ClientConfig{URL: "https://origin.test", LogKey: vkey})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp.Note)
	f.Add([]byte("<html>502 Bad Gateway</html>"))
	f.Add(cp.Note[:len(cp.Note)-10])
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := c.Verify(msg)
		switch {
		case err == nil && !bytes.Equal(got.Note, msg):
			t.Fatalf("verified checkpoint's note is not the message")
		case err != nil && !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrInconsistent):
			t.Fatalf("error of neither kind: %v", err)
		}
	})
}
