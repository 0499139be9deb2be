package trillianlog

import (
	"strings"
	"testing"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// TestOpenConfig checks that Open refuses an incomplete Config before it
// calls Trillian.
func TestOpenConfig(t *testing.T) {
	skey, _, err := merkle.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	client := trillian.NewTrillianLogClient(nil)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no client", Config{TreeID: 1, Origin: testOrigin, Signer: signer}, "no Trillian client"},
		{"no tree", Config{Client: client, Origin: testOrigin, Signer: signer}, "no tree ID"},
		{"no signer", Config{Client: client, TreeID: 1, Origin: testOrigin}, "no log signer"},
		{"no origin", Config{Client: client, TreeID: 1, Signer: signer}, "no origin"},
		{"key for another origin", Config{Client: client, TreeID: 1, Origin: "other.example/log", Signer: signer}, "want the origin"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Open(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, %v; want an error saying %q", l, err, tc.want)
			}
		})
	}
}
