package provenance

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
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// The test vectors in testdata: events (*.event, a leaf as it is logged),
// proof bundles (*.bundle.json, and good_bundle.json, the worked example
// of docs/bundle.md), each good_* one accepted and each fail_* one refused
// with the error vectorWant names. Events are checked against the keys in
// testdata/event.keys, bundles against the pins in
// testdata/good_bundle.trust (origin, log key, operator key).
//
// vectors writes them all from keys derived from fixed seeds (vectorKey),
// so they are the same on every run. TestVectorsCurrent checks the files
// are what it writes; after changing it, rewrite them with
//
//	go test -run TestVectorsCurrent -update ./provenance
var update = flag.Bool("update", false, "rewrite the good_* and fail_* test vectors in testdata")

// vectorWant is what checking each vector gives: nil for good ones, the
// sentinel a fail_ one's error matches otherwise.
var vectorWant = map[string]error{
	"good_enroll.event":                            nil,
	"good_register.event":                          nil,
	"good_handoff.event":                           nil,
	"good_receive.event":                           nil,
	"fail_noncanonical_sig.event":                  ErrMalformedEvent,
	"fail_two_signatures.event":                    ErrMalformedEvent,
	"fail_repeated_signature.event":                ErrMalformedEvent,
	"fail_text_after_signature.event":              ErrMalformedEvent,
	"fail_signer_not_actor.event":                  ErrMalformedEvent,
	"fail_key_order.event":                         ErrMalformedEvent,
	"fail_unknown_field.event":                     ErrMalformedEvent,
	"fail_wrong_key.event":                         ErrBadSignature,
	"fail_tampered_text.event":                     ErrBadSignature,
	"good_bundle.json":                             nil,
	"fail_noncanonical_sig.bundle.json":            ErrMalformedEvent,
	"fail_two_signatures.bundle.json":              ErrMalformedEvent,
	"fail_wrong_key.bundle.json":                   ErrBadSignature,
	"fail_tampered_text.bundle.json":               ErrBadSignature,
	"fail_tampered_proof.bundle.json":              merkle.ErrBadProof,
	"fail_missing_enrollment.bundle.json":          ErrNotFound,
	"fail_checkpoint_wrong_key.bundle.json":        merkle.ErrBadCheckpoint,
	"fail_noncanonical_checkpoint_sig.bundle.json": merkle.ErrBadCheckpoint,
	"fail_noncanonical_leaf_base64.bundle.json":    ErrMalformedBundle,
	"fail_key_order.bundle.json":                   ErrMalformedBundle,
	"fail_unknown_field.bundle.json":               ErrMalformedBundle,
	"fail_time_before_previous.bundle.json":        ErrTimeBeforePrevious,
	"fail_time_before_enrollment.bundle.json":      ErrTimeBeforeEnrollment,
	"fail_bidi_override.event":                     ErrMalformedEvent,
	"fail_zero_width.event":                        ErrMalformedEvent,
	"fail_newline.event":                           ErrMalformedEvent,
	"fail_bidi_text.bundle.json":                   ErrMalformedEvent,
}

// vectorKey returns the signed-note key named name whose Ed25519 seed is
// SHA-256("provtrail test vector key " + label): a fixed test key, the
// same on every run, that signs nothing outside testdata.
func vectorKey(t testing.TB, name, label string) keyPair {
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
	return keyPair{signer, vkey}
}

// vectorLogSize is the size of the log the vector bundles are proved in:
// its last entry is not of the item, and no bundle carries it.
const vectorLogSize = 6

// vectors returns every test vector by file name, and the contents of
// event.keys and good_bundle.trust.
//
// The log: the operator enrolls acme (manufacturer, entry 0) and swift
// (courier, 1); acme registers itemX (2) and hands it off to swift (3);
// swift receives it (4). The fail_ bundles that hold a bad leaf are proved
// in a log that holds that leaf in place of the good one, under a
// checkpoint the log key signed: what a log that accepted the leaf would
// serve.
func vectors(t testing.TB) map[string][]byte {
	t.Helper()
	op := vectorKey(t, OperatorID, "operator")
	st, err := NewState(op.vkey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: st, op: op, time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC), keys: map[string]keyPair{
		"acme":  vectorKey(t, "acme", "acme"),
		"swift": vectorKey(t, "swift", "swift"),
	}}
	f.ok(f.enrollLeaf("acme", RoleManufacturer))
	f.ok(f.enrollLeaf("swift", RoleCourier))
	f.ok(f.registerLeaf("acme", itemX))
	f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
	f.ok(f.receiveLeaf("swift", itemX))
	enroll, register, receive := f.leaves[0], f.leaves[2], f.leaves[4]
	impostor := func(id string) keyPair { return vectorKey(t, id, "impostor "+id) }
	logKey := vectorKey(t, testOrigin, "log")
	trust := Trust{Origin: testOrigin, LogKey: logKey.vkey, OperatorKey: op.vkey}

	v := map[string][]byte{
		"event.keys":        []byte(op.vkey + "\n" + f.keys["acme"].vkey + "\n" + f.keys["swift"].vkey + "\n"),
		"good_bundle.trust": []byte(trust.Origin + "\n" + trust.LogKey + "\n" + trust.OperatorKey + "\n"),

		"good_enroll.event":   enroll,
		"good_register.event": register,
		"good_handoff.event":  f.leaves[3],
		"good_receive.event":  receive,
		// The receive with the last digit of its signature changed in the
		// two bits base64 leaves unused: the same signature, which
		// note.Open verifies, as another leaf with another leaf hash.
		"fail_noncanonical_sig.event":     otherBase64(receive),
		"fail_two_signatures.event":       resign(t, register, f.keys["acme"], f.keys["swift"]),
		"fail_repeated_signature.event":   append(slices.Clone(register), sigBlock(register)...),
		"fail_text_after_signature.event": append(slices.Clone(register), "more\n"...),
		"fail_signer_not_actor.event":     resign(t, register, f.keys["swift"]),
		"fail_key_order.event": rawLeaf(t, f.keys["acme"],
			`{"actor":"acme","kind":"register","time":"2026-03-01T09:03:00Z","place":"Shenzhen","item":"01/09506000134352/21/X1","register":{"product":"Handbag <Classic>","lot":"L-2026/03"}}`),
		"fail_unknown_field.event": rawLeaf(t, f.keys["acme"],
			`{"kind":"register","actor":"acme","time":"2026-03-01T09:03:00Z","place":"Shenzhen","item":"01/09506000134352/21/X1","register":{"product":"Handbag <Classic>","lot":"L-2026/03","colour":"red"}}`),
		"fail_wrong_key.event":     resign(t, register, impostor("acme")),
		"fail_tampered_text.event": bytes.Replace(register, []byte("Shenzhen"), []byte("Shanghai"), 1),
	}

	entries := []int{0, 1, 2, 3, 4}
	tree, cp := vectorLog(t, logKey, f.leaves)
	var es []BundleEntry
	for _, i := range entries {
		es = append(es, BundleEntry{Index: uint64(i), Leaf: f.leaves[i], Proof: tree.proof(uint64(i))})
	}
	good, err := BuildBundle(trust, itemX, cp.Note, es)
	if err != nil {
		t.Fatalf("the good bundle: %v", err)
	}
	if !bytes.Equal(good, vectorBundle(t, trust, logKey, f.leaves, entries)) {
		t.Fatal("vectorBundle does not write the bundle BuildBundle writes")
	}
	v["good_bundle.json"] = good
	withLeaf4 := func(leaf []byte) []byte {
		leaves := append(slices.Clone(f.leaves[:4]), leaf)
		return vectorBundle(t, trust, logKey, leaves, entries)
	}
	v["fail_noncanonical_sig.bundle.json"] = withLeaf4(otherBase64(receive))
	v["fail_two_signatures.bundle.json"] = withLeaf4(resign(t, receive, f.keys["swift"], f.keys["acme"]))
	v["fail_wrong_key.bundle.json"] = withLeaf4(resign(t, receive, impostor("swift")))
	v["fail_tampered_text.bundle.json"] = withLeaf4(bytes.Replace(receive, []byte("Hong Kong"), []byte("Hong Kang"), 1))
	v["fail_checkpoint_wrong_key.bundle.json"] = vectorBundle(t, trust, impostor(testOrigin), f.leaves, entries)

	edit := func(change func(b *bundleJSON)) []byte {
		b, err := decodeBundle(good)
		if err != nil {
			t.Fatal(err)
		}
		change(&b)
		out, err := encodeBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	v["fail_missing_enrollment.bundle.json"] = edit(func(b *bundleJSON) { b.Entries = b.Entries[1:] })
	v["fail_tampered_proof.bundle.json"] = edit(func(b *bundleJSON) {
		p, err := merkle.ParseProof([]byte(b.Entries[2].Proof))
		if err != nil {
			t.Fatal(err)
		}
		p.Hashes[0][0] ^= 1
		b.Entries[2].Proof = string(merkle.FormatProof(p))
	})
	v["fail_noncanonical_checkpoint_sig.bundle.json"] = edit(func(b *bundleJSON) {
		cp := string(otherBase64([]byte(b.Checkpoint)))
		for i := range b.Entries { // every proof carries the checkpoint too
			b.Entries[i].Proof = strings.Replace(b.Entries[i].Proof, b.Checkpoint, cp, 1)
		}
		b.Checkpoint = cp
	})
	// JSON the bundle's decoder must refuse, though encoding/json reads
	// the same bundle out of it.
	v["fail_key_order.bundle.json"] = replaceOnce(t, good, "  \"format\": \"provtrail-bundle/v1\",\n  \"origin\": \"example.com/provtrail\",\n",
		"  \"origin\": \"example.com/provtrail\",\n  \"format\": \"provtrail-bundle/v1\",\n")
	v["fail_unknown_field.bundle.json"] = replaceOnce(t, good, "  \"format\": \"provtrail-bundle/v1\",\n",
		"  \"format\": \"provtrail-bundle/v1\",\n  \"comment\": \"unknown field\",\n")
	v["fail_noncanonical_leaf_base64.bundle.json"] = noncanonicalLeaf(t, good)

	// Times the rules refuse, in logs that hold them: swift's receive a
	// second before acme's handoff, and acme's register a second before
	// acme's enrollment (a bundle of the two alone: no event relies on
	// swift).
	handoff, err := ParseEvent(f.leaves[3])
	if err != nil {
		t.Fatal(err)
	}
	early, err := Sign(Event{Kind: KindReceive, Actor: "swift", Time: handoff.Time.Add(-time.Second), Place: "Hong Kong",
		Item: itemX, Prev: merkle.LeafHash(f.leaves[3]), Receive: &Receive{By: "swift"}}, f.keys["swift"].signer)
	if err != nil {
		t.Fatal(err)
	}
	v["fail_time_before_previous.bundle.json"] = withLeaf4(early)
	enrollment, err := ParseEvent(enroll)
	if err != nil {
		t.Fatal(err)
	}
	earlyRegister, err := Sign(Event{Kind: KindRegister, Actor: "acme", Time: enrollment.Time.Add(-time.Second), Place: "Shenzhen",
		Item: itemX, Register: &Register{Product: "Handbag <Classic>", Lot: "L-2026/03"}}, f.keys["acme"].signer)
	if err != nil {
		t.Fatal(err)
	}
	v["fail_time_before_enrollment.bundle.json"] = vectorBundle(t, trust, logKey,
		[][]byte{enroll, f.leaves[1], earlyRegister}, []int{0, 2})

	// Text the rules refuse, in canonical JSON signed by the actor: a
	// right-to-left override in the product, a zero-width space in the
	// place, a newline in the description; and a bundle whose register
	// wraps its product in a bidi isolate.
	registerWith := func(r Register, place string) Event {
		return Event{Kind: KindRegister, Actor: "acme", Time: enrollment.Time.Add(2 * time.Minute), Place: place, Item: itemX, Register: &r}
	}
	acme := f.keys["acme"]
	v["fail_bidi_override.event"] = withText(t, registerWith(Register{Product: "PLACEHOLDER"}, "Shenzhen"), acme, "Handbag \u202eCBA")
	v["fail_zero_width.event"] = withText(t, registerWith(Register{Product: "Handbag"}, "PLACEHOLDER"), acme, "Shen\u200bzhen")
	v["fail_newline.event"] = withText(t, registerWith(Register{Product: "Handbag", Description: "PLACEHOLDER"}, "Shenzhen"), acme, "Tan leather.\nMade in Shenzhen.")
	bidiRegister := withText(t, registerWith(Register{Product: "PLACEHOLDER"}, "Shenzhen"), acme, "Handbag \u2067Classic\u2069")
	v["fail_bidi_text.bundle.json"] = vectorBundle(t, trust, logKey, [][]byte{enroll, f.leaves[1], bidiRegister}, []int{0, 2})
	return v
}

// vectorBundle writes the bundle of itemX with the given entries of a log
// of vectorLogSize whose first leaves are leaves, with a checkpoint signed
// by logKey, as BuildBundle writes one but without verifying it.
func vectorBundle(t testing.TB, trust Trust, logKey keyPair, leaves [][]byte, entries []int) []byte {
	t.Helper()
	tree, cp := vectorLog(t, logKey, leaves)
	b := bundleJSON{Format: BundleFormat, Origin: trust.Origin, LogKey: trust.LogKey, OperatorKey: trust.OperatorKey,
		Item: itemX.String(), Checkpoint: string(cp.Note)}
	for _, i := range entries {
		p := merkle.FormatProof(merkle.Proof{Index: uint64(i), Hashes: tree.proof(uint64(i)), Checkpoint: cp.Note})
		b.Entries = append(b.Entries, entryJSON{Index: uint64(i), Leaf: leaves[i], Proof: string(p)})
	}
	out, err := encodeBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vectorLog returns the tree of a log of vectorLogSize whose first
// leaves are leaves, and its checkpoint signed by logKey.
func vectorLog(t testing.TB, logKey keyPair, leaves [][]byte) (*sparseTree, merkle.Checkpoint) {
	t.Helper()
	m := map[uint64][]byte{}
	for i, leaf := range leaves {
		m[uint64(i)] = leaf
	}
	tree := newSparseTree(vectorLogSize, m)
	cp, err := merkle.SignCheckpoint(logKey.signer, testOrigin, vectorLogSize, tree.root())
	if err != nil {
		t.Fatal(err)
	}
	return tree, cp
}

// resign signs the text of the signed note msg again, with signers.
func resign(t testing.TB, msg []byte, signers ...keyPair) []byte {
	t.Helper()
	var ss []note.Signer
	for _, kp := range signers {
		ss = append(ss, kp.signer)
	}
	out, err := note.Sign(&note.Note{Text: string(msg[:bytes.LastIndex(msg, []byte("\n\n"))+1])}, ss...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func replaceOnce(t testing.TB, b []byte, old, new string) []byte {
	t.Helper()
	if bytes.Count(b, []byte(old)) != 1 {
		t.Fatalf("%q is not once in %q", old, b)
	}
	return bytes.Replace(b, []byte(old), []byte(new), 1)
}

// noncanonicalLeaf returns the bundle b with the base64 of the first leaf
// that has padding spelled with non-zero unused bits: encoding/json decodes
// it to the same leaf.
func noncanonicalLeaf(t testing.TB, b []byte) []byte {
	t.Helper()
	for line := range strings.Lines(string(b)) {
		s, ok := strings.CutPrefix(line, "      \"leaf\": \"")
		if !ok || !strings.HasSuffix(s, "=\",\n") {
			continue
		}
		leaf := strings.TrimSuffix(s, "\",\n")
		return replaceOnce(t, b, leaf, string(otherBase64([]byte(leaf))))
	}
	t.Fatal("no leaf's base64 has padding")
	return nil
}

// TestVectorsCurrent checks that the vectors in testdata are what vectors
// writes, or with -update writes them.
func TestVectorsCurrent(t *testing.T) {
	v := vectors(t)
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
			t.Errorf("vectorWant names %s, which vectors does not write", name)
		}
	}
}

// TestVectors checks every good_* and fail_* event and bundle in testdata:
// good ones are accepted, fail_ ones refused with the error vectorWant
// names for them.
func TestVectors(t *testing.T) {
	trust := readTrust(t, "testdata/good_bundle.trust")
	keys := map[string]note.Verifier{}
	for _, vkey := range readLines(t, "testdata/event.keys") {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			t.Fatal(err)
		}
		keys[v.Name()] = v
	}
	files := globs(t, "testdata/good_*.event", "testdata/fail_*.event", "testdata/good_*.json", "testdata/fail_*.json")
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
			if strings.HasSuffix(name, ".event") {
				err = checkEventVector(b, keys)
			} else {
				_, err = VerifyBundle(b, trust)
				var be *BundleError
				if err != nil && !errors.As(err, &be) {
					t.Errorf("error %v is not a *BundleError", err)
				}
			}
			switch {
			case want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case want != nil && !errors.Is(err, want):
				t.Fatalf("got %v, want an error matching %v", err, want)
			}
			var ee *EventError
			if errors.Is(want, ErrMalformedEvent) && !errors.As(err, &ee) {
				t.Errorf("error %v is not an *EventError", err)
			}
			t.Logf("%v", err)
		})
	}
}

// checkEventVector parses an event leaf and verifies it with the key its
// actor has in keys.
func checkEventVector(leaf []byte, keys map[string]note.Verifier) error {
	e, err := ParseEvent(leaf)
	if err != nil {
		return err
	}
	v, ok := keys[e.Actor]
	if !ok {
		return errors.New("no key for " + e.Actor)
	}
	_, err = VerifyEvent(leaf, v)
	return err
}

// TestNonCanonicalVectorVerifies checks what fail_noncanonical_sig.event
// is refused for: note.Open verifies its signature, and it differs from
// the good receive in one base64 digit only.
func TestNonCanonicalVectorVerifies(t *testing.T) {
	good, err := os.ReadFile("testdata/good_receive.event")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := os.ReadFile("testdata/fail_noncanonical_sig.event")
	if err != nil {
		t.Fatal(err)
	}
	diff := 0
	for i := range min(len(good), len(bad)) {
		if good[i] != bad[i] {
			diff++
		}
	}
	if len(good) != len(bad) || diff != 1 {
		t.Fatalf("the vectors differ in %d bytes, want 1", diff)
	}
	e, err := ParseEvent(good)
	if err != nil {
		t.Fatal(err)
	}
	var v note.Verifier
	for _, vkey := range readLines(t, "testdata/event.keys") {
		if strings.HasPrefix(vkey, e.Actor+"+") {
			v, err = note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := note.Open(bad, note.VerifierList(v)); err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if merkle.LeafHash(bad) == merkle.LeafHash(good) {
		t.Fatal("the two leaves have one leaf hash")
	}
}

// TestBundleVector checks the worked example of docs/bundle.md proves what
// the document says it does.
func TestBundleVector(t *testing.T) {
	b, err := os.ReadFile("testdata/good_bundle.json")
	if err != nil {
		t.Fatal(err)
	}
	h, err := VerifyBundle(b, readTrust(t, "testdata/good_bundle.trust"))
	if err != nil {
		t.Fatal(err)
	}
	if h.State.Status != StatusInCustody || h.State.Custodian != "swift" || len(h.Events) != 3 {
		t.Fatalf("history: %+v", h.State)
	}
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// readTrust reads pins: origin, log key, operator key, one a line.
func readTrust(t testing.TB, path string) Trust {
	t.Helper()
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%s has %d lines, want 3", path, len(lines))
	}
	return Trust{Origin: lines[0], LogKey: lines[1], OperatorKey: lines[2]}
}

func globs(t testing.TB, patterns ...string) []string {
	t.Helper()
	var out []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	return out
}
