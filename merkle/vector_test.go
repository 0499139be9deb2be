package merkle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// The test vectors in testdata: checkpoints (*.checkpoint) checked with
// ParseCheckpoint against the log key in testdata/log.vkey (its name is
// the origin), and tlog-proofs (*.tlog-proof) of leaf 3 of a tree of seven
// distinctLeaves, checked with VerifyProof against the same key. Each
// good_* one is accepted and each fail_* one refused with the error
// vectorWant names.
//
// signedVectors writes them all from keys derived from fixed seeds, so they are
// the same on every run. TestVectorsCurrent checks the files are what it
// writes; after changing it, rewrite them with
//
//	go test -run TestVectorsCurrent -update ./merkle
var update = flag.Bool("update", false, "rewrite the good_* and fail_* test vectors in testdata")

// vectorWant is what checking each vector gives: nil for good ones, the
// sentinel a fail_ one's error matches otherwise.
var vectorWant = map[string]error{
	"good_size7.checkpoint":                   nil,
	"good_empty.checkpoint":                   nil,
	"good_cosigned.checkpoint":                nil,
	"fail_bad_signature.checkpoint":           merkle.ErrBadCheckpoint,
	"fail_noncanonical_sig.checkpoint":        merkle.ErrBadCheckpoint,
	"fail_noncanonical_cosig.checkpoint":      merkle.ErrBadCheckpoint,
	"fail_repeated_noncanonical.checkpoint":   merkle.ErrBadCheckpoint,
	"fail_wrong_key.checkpoint":               merkle.ErrBadCheckpoint,
	"fail_other_origin.checkpoint":            merkle.ErrBadCheckpoint,
	"fail_size_leading_zero.checkpoint":       merkle.ErrBadCheckpoint,
	"good_index3.tlog-proof":                  nil,
	"fail_noncanonical_hash.tlog-proof":       merkle.ErrBadProof,
	"fail_index_leading_zero.tlog-proof":      merkle.ErrBadProof,
	"fail_extra_data.tlog-proof":              merkle.ErrBadProof,
	"fail_tampered_hash.tlog-proof":           merkle.ErrBadProof,
	"fail_noncanonical_checkpoint.tlog-proof": merkle.ErrBadCheckpoint,
}

// vectorKey returns the signed-note key named name whose Ed25519 seed is
// SHA-256("provtrail test vector key " + label): a fixed test key, the
// same on every run, that signs nothing outside testdata.
func vectorKey(t testing.TB, name, label string) (note.Signer, string) {
	t.Helper()
	seed := sha256.Sum256([]byte("provtrail test vector key " + label))
	pub := ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	hash := vkey[len(name)+1 : len(name)+1+8]
	signer, err := note.NewSigner("PRIVATE+KEY+" + name + "+" + hash + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, seed[:]...)))
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}

// vectorIndex and vectorSize place the leaf the proof vectors prove.
const vectorIndex, vectorSize = 3, 7

func signedVectors(t testing.TB) map[string][]byte {
	t.Helper()
	log, vkey := vectorKey(t, testOrigin, "log")
	impostor, _ := vectorKey(t, testOrigin, "impostor log")
	witness, _ := vectorKey(t, "witness.example.net", "witness")
	rt := newRefTree(t, distinctLeaves(vectorSize))
	sign := func(size uint64) []byte {
		cp, err := merkle.SignCheckpoint(log, testOrigin, size, rt.root(int(size)))
		if err != nil {
			t.Fatal(err)
		}
		return cp.Note
	}
	good := sign(vectorSize)
	text := string(good[:bytes.Index(good, []byte("\n\n"))+1])
	badSig := bytes.Clone(good)
	badSig[len(badSig)-10] ^= 1 // a base64 digit in the middle: still canonical
	cosigned := signText(t, text, log, witness)

	p := merkle.Proof{Index: vectorIndex, Hashes: rt.inclusion(vectorIndex, vectorSize), Checkpoint: good}
	proof := merkle.FormatProof(p)
	tampered := p
	tampered.Hashes = slices.Clone(p.Hashes)
	tampered.Hashes[1][0] ^= 1
	h0 := p.Hashes[0].String()
	noncanonical := p
	noncanonical.Checkpoint = otherBase64(good)

	return map[string][]byte{
		"log.vkey": []byte(vkey + "\n"),

		"good_size7.checkpoint":                 good,
		"good_empty.checkpoint":                 sign(0),
		"good_cosigned.checkpoint":              cosigned,
		"fail_bad_signature.checkpoint":         badSig,
		"fail_noncanonical_sig.checkpoint":      otherBase64(good),
		"fail_noncanonical_cosig.checkpoint":    otherBase64(cosigned),
		"fail_repeated_noncanonical.checkpoint": append(bytes.Clone(good), sigLines(otherBase64(good))...),
		"fail_wrong_key.checkpoint":             signText(t, text, impostor),
		"fail_other_origin.checkpoint":          signText(t, "other.example.com/log"+text[len(testOrigin):], log),
		"fail_size_leading_zero.checkpoint":     signText(t, strings.Replace(text, "\n7\n", "\n07\n", 1), log),

		"good_index3.tlog-proof":                  proof,
		"fail_noncanonical_hash.tlog-proof":       bytes.Replace(proof, []byte(h0), []byte(string(otherBase64([]byte(h0 + "\n")))[:len(h0)]), 1),
		"fail_index_leading_zero.tlog-proof":      bytes.Replace(proof, []byte("index 3\n"), []byte("index 03\n"), 1),
		"fail_extra_data.tlog-proof":              bytes.Replace(proof, []byte("index 3\n"), []byte("extra AAAA\nindex 3\n"), 1),
		"fail_tampered_hash.tlog-proof":           merkle.FormatProof(tampered),
		"fail_noncanonical_checkpoint.tlog-proof": merkle.FormatProof(noncanonical),
	}
}

// TestVectorsCurrent checks that the vectors in testdata are what
// signedVectors writes, or with -update writes them.
func TestVectorsCurrent(t *testing.T) {
	v := signedVectors(t)
	for _, name := range slices.Sorted(maps.Keys(v)) {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, v[name], 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test -run TestVectorsCurrent -update writes it)", err)
		}
		if !bytes.Equal(got, v[name]) {
			t.Errorf("%s is not what the vector generator writes (go test -run TestVectorsCurrent -update rewrites it)", path)
		}
	}
	for name := range vectorWant {
		if _, ok := v[name]; !ok {
			t.Errorf("vectorWant names %s, which signedVectors does not write", name)
		}
	}
}

// TestVectors checks every good_* and fail_* checkpoint and proof in
// testdata: good ones are accepted, fail_ ones refused with the error
// vectorWant names for them.
func TestVectors(t *testing.T) {
	vkey, err := os.ReadFile("testdata/log.vkey")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	origin := verifier.Name()
	leaf := distinctLeaves(vectorSize)[vectorIndex]
	var files []string
	for _, pattern := range []string{"good_*.checkpoint", "fail_*.checkpoint", "good_*.tlog-proof", "fail_*.tlog-proof"} {
		m, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) != len(vectorWant) {
		t.Errorf("testdata has %d vectors, vectorWant %d", len(files), len(vectorWant))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			want, ok := vectorWant[name]
			if !ok {
				t.Fatalf("no expected outcome for %s in vectorWant", name)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, ".checkpoint") {
				_, err = merkle.ParseCheckpoint(b, origin, verifier)
			} else {
				_, _, err = merkle.VerifyProof(b, leaf, origin, verifier)
			}
			switch {
			case want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case want != nil && !errors.Is(err, want):
				t.Fatalf("got %v, want an error matching %v", err, want)
			}
			t.Logf("%v", err)
		})
	}
}

// TestNonCanonicalVectorsVerify checks what the non-canonical checkpoint
// vectors are refused for: note.Open verifies them, and with their
// signature lines written canonically they parse.
func TestNonCanonicalVectorsVerify(t *testing.T) {
	vkey, err := os.ReadFile("testdata/log.vkey")
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fail_noncanonical_sig.checkpoint", "fail_noncanonical_cosig.checkpoint"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := note.Open(b, note.VerifierList(verifier)); err != nil {
				t.Fatalf("note.Open: %v", err)
			}
			canon := canonicalSigs(t, b)
			if bytes.Equal(canon, b) {
				t.Fatal("the vector is canonical")
			}
			if _, err := merkle.ParseCheckpoint(canon, verifier.Name(), verifier); err != nil {
				t.Fatalf("written canonically: %v", err)
			}
		})
	}
}
