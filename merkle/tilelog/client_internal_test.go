package tilelog

import (
	"bytes"
	"encoding/binary"
	"testing"
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
