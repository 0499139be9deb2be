package merkle_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "log.example.com/provtrail"

// testKey is a freshly generated signed-note key.
type testKey struct {
	skey, vkey string
	signer     note.Signer
	verifier   note.Verifier
}

func newTestKey(t testing.TB, name string) testKey {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(name)
	if err != nil {
		t.Fatalf("GenerateKey(%q): %v", name, err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatalf("note.NewSigner: %v", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatalf("note.NewVerifier(%q): %v", vkey, err)
	}
	return testKey{skey: skey, vkey: vkey, signer: signer, verifier: verifier}
}

// signText signs an arbitrary note text, for checkpoints built by hand.
func signText(t testing.TB, text string, signers ...note.Signer) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatalf("note.Sign(%q): %v", text, err)
	}
	return msg
}

func TestCheckpointRoundTrip(t *testing.T) {
	key := newTestKey(t, testOrigin)
	rt := newRefTree(t, distinctLeaves(7))
	for _, size := range []uint64{0, 1, 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			root := rt.root(int(size))
			cp, err := merkle.SignCheckpoint(key.signer, testOrigin, size, root)
			if err != nil {
				t.Fatal(err)
			}
			if cp.Origin != testOrigin || cp.Size != size || cp.Root != root {
				t.Errorf("SignCheckpoint = (%q, %d, %v), want (%q, %d, %v)", cp.Origin, cp.Size, cp.Root, testOrigin, size, root)
			}
			wantText := fmt.Sprintf("%s\n%d\n%s\n", testOrigin, size, root)
			if !bytes.HasPrefix(cp.Note, []byte(wantText+"\n— "+testOrigin+" ")) {
				t.Errorf("checkpoint note = %q, want a C2SP checkpoint %q signed by %s", cp.Note, wantText, testOrigin)
			}
			got, err := merkle.ParseCheckpoint(cp.Note, testOrigin, key.verifier)
			if err != nil {
				t.Fatalf("ParseCheckpoint: %v", err)
			}
			if got.Origin != cp.Origin || got.Size != cp.Size || got.Root != cp.Root || !bytes.Equal(got.Note, cp.Note) {
				t.Errorf("ParseCheckpoint = %+v, want %+v", got, cp)
			}
		})
	}
}

func TestParseCheckpointCosigned(t *testing.T) {
	key := newTestKey(t, testOrigin)
	witness := newTestKey(t, "witness.example.net")
	impostor := newTestKey(t, testOrigin) // same name, other key
	root := merkle.LeafHash([]byte("x"))
	cp, err := merkle.SignCheckpoint(key.signer, testOrigin, 1, root)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp.Note, note.VerifierList(key.verifier))
	if err != nil {
		t.Fatal(err)
	}
	for _, signer := range []note.Signer{witness.signer, impostor.signer} {
		cosigned, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs}, signer)
		if err != nil {
			t.Fatal(err)
		}
		got, err := merkle.ParseCheckpoint(cosigned, testOrigin, key.verifier)
		if err != nil {
			t.Fatalf("ParseCheckpoint of a checkpoint also signed by %s: %v", signer.Name(), err)
		}
		if got.Size != 1 || got.Root != root || !bytes.Equal(got.Note, cosigned) {
			t.Errorf("ParseCheckpoint = %+v", got)
		}
	}
	// Signed only by the witness: not a checkpoint of this log.
	alone := signText(t, n.Text, witness.signer)
	if _, err := merkle.ParseCheckpoint(alone, testOrigin, key.verifier); !errors.Is(err, merkle.ErrBadCheckpoint) {
		t.Errorf("ParseCheckpoint of a checkpoint signed only by a witness = %v, want ErrBadCheckpoint", err)
	}
}

func TestParseCheckpointBad(t *testing.T) {
	key := newTestKey(t, testOrigin)
	other := newTestKey(t, testOrigin)
	root := merkle.LeafHash([]byte("x"))
	good, err := merkle.SignCheckpoint(key.signer, testOrigin, 5, root)
	if err != nil {
		t.Fatal(err)
	}
	otherSigned, err := merkle.SignCheckpoint(other.signer, testOrigin, 5, root)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good.Note)
		b[i] ^= 0x01
		return b
	}
	bodyLen := bytes.Index(good.Note, []byte("\n\n")) + 1
	b64 := root.String()
	cosigned := signText(t, string(good.Note[:bodyLen]), key.signer, newTestKey(t, "witness.example.net").signer)
	tests := []struct {
		name   string
		msg    []byte
		origin string
	}{
		{"wrong origin", good.Note, "other.example.com/log"},
		{"origin prefix", good.Note, testOrigin[:5]},
		{"wrong key", otherSigned.Note, testOrigin},
		{"empty", nil, testOrigin},
		{"body only", good.Note[:bodyLen], testOrigin},
		{"no signature line", good.Note[:bodyLen+1], testOrigin},
		{"truncated signature", good.Note[:len(good.Note)-5], testOrigin},
		{"signature without final newline", good.Note[:len(good.Note)-1], testOrigin},
		{"flipped byte in origin", flip(2), testOrigin},
		{"flipped byte in size", flip(len(testOrigin) + 1), testOrigin},
		{"flipped byte in root", flip(bodyLen - 10), testOrigin},
		{"flipped byte in signature", flip(len(good.Note) - 10), testOrigin},
		{"flipped byte in key hash", flip(bodyLen + 1 + len("— "+testOrigin+" ") + 2), testOrigin},
		{"signature base64 not canonical", otherBase64(good.Note), testOrigin},
		{"cosignature base64 not canonical", otherBase64(cosigned), testOrigin},
		{"signature line repeated, not canonical", append(bytes.Clone(good.Note), sigLines(otherBase64(good.Note))...), testOrigin},
		{"too few lines", signText(t, testOrigin+"\n5\n", key.signer), testOrigin},
		{"size not a number", signText(t, testOrigin+"\nfive\n"+b64+"\n", key.signer), testOrigin},
		{"negative size", signText(t, testOrigin+"\n-5\n"+b64+"\n", key.signer), testOrigin},
		{"size with a plus sign", signText(t, testOrigin+"\n+5\n"+b64+"\n", key.signer), testOrigin},
		{"size with leading zero", signText(t, testOrigin+"\n05\n"+b64+"\n", key.signer), testOrigin},
		{"size overflows", signText(t, testOrigin+"\n18446744073709551616\n"+b64+"\n", key.signer), testOrigin},
		{"root not base64", signText(t, testOrigin+"\n5\n!!"+b64[2:]+"\n", key.signer), testOrigin},
		{"root too short", signText(t, testOrigin+"\n5\n"+base64.StdEncoding.EncodeToString(root[:31])+"\n", key.signer), testOrigin},
		{"root too long", signText(t, testOrigin+"\n5\n"+base64.StdEncoding.EncodeToString(append(root[:], 0))+"\n", key.signer), testOrigin},
		{"root without padding", signText(t, testOrigin+"\n5\n"+b64[:43]+"\n", key.signer), testOrigin},
		{"root with non-zero padding bits", signText(t, testOrigin+"\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\n", key.signer), testOrigin},
		{"empty origin", signText(t, "\n5\n"+b64+"\n", key.signer), ""},
		{"origin with trailing space", signText(t, testOrigin+" \n5\n"+b64+"\n", key.signer), testOrigin},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := merkle.ParseCheckpoint(tc.msg, tc.origin, key.verifier)
			if !errors.Is(err, merkle.ErrBadCheckpoint) {
				t.Errorf("ParseCheckpoint = %+v, %v; want ErrBadCheckpoint", cp, err)
			}
		})
	}
}

func TestParseCheckpointExtensionLines(t *testing.T) {
	// C2SP tlog-checkpoint allows extension lines after the root; they are
	// covered by the signature and kept verbatim in Note.
	key := newTestKey(t, testOrigin)
	root := merkle.LeafHash([]byte("x"))
	msg := signText(t, fmt.Sprintf("%s\n3\n%s\nextension line\n", testOrigin, root), key.signer)
	cp, err := merkle.ParseCheckpoint(msg, testOrigin, key.verifier)
	if err != nil {
		t.Fatalf("ParseCheckpoint with an extension line: %v", err)
	}
	if cp.Size != 3 || cp.Root != root || !bytes.Equal(cp.Note, msg) {
		t.Errorf("ParseCheckpoint = %+v", cp)
	}
}
