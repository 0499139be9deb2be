package provenance

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/provtrail/provtrail/merkle"
)

const testOrigin = "example.com/provtrail"

// bundleWorld builds a log in which itemX has ten events, interleaved with
// events of itemY and of actors, including a key rotation of swift in the
// middle of itemX's history and a revocation of daigou after it.
func bundleWorld(t testing.TB) *fixture {
	t.Helper()
	f := newFixture(t)
	base(f)                                                  // 0-4: enroll acme swift other daigou; register X
	f.ok(f.enrollLeaf("unrelated", RoleCourier))             // 5
	f.ok(f.registerLeaf("acme", itemY))                      // 6
	f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"})) // 7
	f.ok(f.receiveLeaf("swift", itemX))                      // 8
	f.ok(f.handoffLeaf("acme", itemY, Handoff{To: "other"})) // 9
	f.ok(f.receiveLeaf("other", itemY))                      // 10
	f.ok(f.revokeLeaf("swift"))                              // 11
	delete(f.keys, "swift")
	f.ok(f.enrollLeaf("swift", RoleCourier))                   // 12
	f.ok(f.handoffLeaf("swift", itemX, Handoff{To: "daigou"})) // 13
	f.ok(f.receiveLeaf("daigou", itemX))                       // 14
	f.ok(f.handoffLeaf("daigou", itemX, Handoff{To: "other"})) // 15, superseded by 16
	code, h, err := NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.ok(f.handoffLeaf("daigou", itemX, h)) // 16
	buyer := newKey(t, BuyerID)
	f.ok(f.claimLeaf(itemX, code, buyer))                      // 17
	f.ok(f.disputeLeaf(BuyerID, buyer, itemX))                 // 18
	f.ok(f.handoffLeaf("other", itemY, Handoff{To: "daigou"})) // 19
	f.ok(f.rulingLeaf(itemX))                                  // 20
	f.ok(f.revokeLeaf("daigou"))                               // 21
	return f
}

// A testLog places a fixture's leaves in a (sparse) tree, signs a
// checkpoint and builds bundles.
type testLog struct {
	f      *fixture
	logKey keyPair
	trust  Trust
	pos    func(uint64) uint64 // fixture index -> log index
	tree   *sparseTree
	cp     merkle.Checkpoint
}

func newTestLog(t testing.TB, f *fixture, size uint64, pos func(uint64) uint64) *testLog {
	t.Helper()
	l := &testLog{f: f, logKey: newKey(t, testOrigin), pos: pos}
	l.trust = Trust{Origin: testOrigin, LogKey: l.logKey.vkey, OperatorKey: f.op.vkey}
	leaves := map[uint64][]byte{}
	for i, leaf := range f.leaves {
		leaves[pos(uint64(i))] = leaf
	}
	l.tree = newSparseTree(size, leaves)
	cp, err := merkle.SignCheckpoint(l.logKey.signer, testOrigin, size, l.tree.root())
	if err != nil {
		t.Fatal(err)
	}
	l.cp = cp
	return l
}

// entries picks what the bundle of item carries, as the Service will.
func (l *testLog) entries(t testing.TB, item ItemID) []BundleEntry {
	t.Helper()
	var events []Event
	for _, leaf := range l.f.leaves {
		if e, _ := ParseEvent(leaf); e.Item == item {
			events = append(events, e)
		}
	}
	actors := BundleActors(OperatorID, events)
	var out []BundleEntry
	for i, leaf := range l.f.leaves {
		e, _ := ParseEvent(leaf)
		keep := e.Item == item ||
			e.Kind == KindEnroll && slices.Contains(actors, e.Enroll.ID) ||
			e.Kind == KindRevoke && slices.Contains(actors, e.Revoke.ID)
		if keep {
			idx := l.pos(uint64(i))
			out = append(out, BundleEntry{Index: idx, Leaf: leaf, Proof: l.tree.proof(idx)})
		}
	}
	return out
}

func (l *testLog) bundle(t testing.TB, item ItemID) []byte {
	t.Helper()
	b, err := BuildBundle(l.trust, item, l.cp.Note, l.entries(t, item))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func smallLog(t testing.TB) *testLog {
	f := bundleWorld(t)
	return newTestLog(t, f, uint64(len(f.leaves))+3, func(i uint64) uint64 { return i })
}

func TestVerifyBundle(t *testing.T) {
	l := smallLog(t)
	b := l.bundle(t, itemX)
	h, err := VerifyBundle(b, l.trust)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []Kind
	for _, e := range h.Events {
		kinds = append(kinds, e.Event.Kind)
	}
	want := []Kind{KindRegister, KindHandoff, KindReceive, KindHandoff, KindReceive, KindHandoff, KindHandoff, KindReceive, KindDispute, KindRuling}
	if !slices.Equal(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	if h.State.Status != StatusDelivered || h.Item != itemX || h.Checkpoint.Size != l.cp.Size {
		t.Fatalf("history: %+v", h.State)
	}
	var ids []string
	for _, a := range h.Actors {
		ids = append(ids, a.ID)
	}
	if got := fmt.Sprint(ids); got != "[acme daigou other swift]" {
		t.Errorf("actors %s", got)
	}
	if h.Events[0].ActorName != "Test acme" || h.Events[7].Role != RoleBuyer {
		t.Errorf("events: %+v", h.Events)
	}
}

func TestBundleTamper(t *testing.T) {
	l := smallLog(t)
	good := l.bundle(t, itemX)
	mustFail := func(t *testing.T, b []byte, trust Trust, what string) {
		t.Helper()
		_, err := VerifyBundle(b, trust)
		var be *BundleError
		if !errors.As(err, &be) || !errors.Is(err, ErrBadBundle) {
			t.Fatalf("%s: VerifyBundle = %v, want a *BundleError", what, err)
		}
	}

	t.Run("every byte flipped", func(t *testing.T) {
		r := mrand.New(mrand.NewPCG(1, 2))
		positions := r.Perm(len(good))
		if testing.Short() {
			positions = positions[:1000]
		}
		for _, i := range positions {
			for _, x := range []byte{0x01, byte(1 + r.IntN(255))} {
				b := slices.Clone(good)
				b[i] ^= x
				mustFail(t, b, l.trust, fmt.Sprintf("byte %d ^ %#x", i, x))
			}
		}
	})

	decode := func(t *testing.T, b []byte) bundleJSON {
		t.Helper()
		var bj bundleJSON
		if err := json.Unmarshal(b, &bj); err != nil {
			t.Fatal(err)
		}
		return bj
	}
	encode := func(t *testing.T, bj bundleJSON) []byte {
		t.Helper()
		b, err := encodeBundle(bj)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("entry removed", func(t *testing.T) {
		bj := decode(t, good)
		for i := range bj.Entries {
			cut := bj
			cut.Entries = slices.Delete(slices.Clone(bj.Entries), i, i+1)
			e, _ := ParseEvent(bj.Entries[i].Leaf)
			h, err := VerifyBundle(encode(t, cut), l.trust)
			// What a bundle cannot prove (docs/bundle.md): that nothing came
			// after its last item event, or that an actor was not revoked
			// after the item's last event. Dropping those still verifies,
			// and shows less.
			if i == len(bj.Entries)-2 && e.Kind == KindRuling {
				if err != nil || h.State.Status != StatusDisputed {
					t.Fatalf("dropping the last event: %v, %s", err, h.State.Status)
				}
				continue
			}
			if i == len(bj.Entries)-1 && e.Kind == KindRevoke {
				if err != nil || h.Actors[1].Revoked {
					t.Fatalf("dropping the trailing revocation: %v", err)
				}
				continue
			}
			mustFail(t, encode(t, cut), l.trust, fmt.Sprintf("without entry %d (%s)", i, e.Kind))
		}
	})

	t.Run("entries reordered", func(t *testing.T) {
		bj := decode(t, good)
		for i := 0; i+1 < len(bj.Entries); i++ {
			sw := bj
			sw.Entries = slices.Clone(bj.Entries)
			sw.Entries[i], sw.Entries[i+1] = sw.Entries[i+1], sw.Entries[i]
			mustFail(t, encode(t, sw), l.trust, fmt.Sprintf("entries %d and %d swapped", i, i+1))
			// Swapping the leaves but keeping the indices in order.
			sw.Entries[i].Index, sw.Entries[i+1].Index = sw.Entries[i+1].Index, sw.Entries[i].Index
			mustFail(t, encode(t, sw), l.trust, fmt.Sprintf("leaves %d and %d swapped", i, i+1))
		}
	})

	t.Run("entry of another item", func(t *testing.T) {
		bj := decode(t, good)
		other := decode(t, l.bundle(t, itemY))
		for _, oe := range other.Entries {
			e, _ := ParseEvent(oe.Leaf)
			if e.Item != itemY {
				continue
			}
			// Inserted in log order.
			in := bj
			in.Entries = slices.Clone(bj.Entries)
			at, _ := slices.BinarySearchFunc(in.Entries, oe.Index, func(a entryJSON, idx uint64) int { return int(a.Index) - int(idx) })
			in.Entries = slices.Insert(in.Entries, at, oe)
			mustFail(t, encode(t, in), l.trust, fmt.Sprintf("with %s of Y inserted", e.Kind))
			// Replacing an entry of X.
			for i := range bj.Entries {
				rep := bj
				rep.Entries = slices.Clone(bj.Entries)
				rep.Entries[i] = oe
				mustFail(t, encode(t, rep), l.trust, fmt.Sprintf("entry %d replaced by %s of Y", i, e.Kind))
			}
		}
		// An unrelated enrollment is refused too.
		un := bj
		un.Entries = slices.Clone(bj.Entries)
		un.Entries = slices.Insert(un.Entries, 5, entryJSON{Index: 5, Leaf: l.f.leaves[5],
			Proof: string(merkle.FormatProof(merkle.Proof{Index: 5, Hashes: l.tree.proof(5), Checkpoint: l.cp.Note}))})
		mustFail(t, encode(t, un), l.trust, "with an unrelated enrollment")
	})

	t.Run("other pinned keys", func(t *testing.T) {
		other := l.trust
		other.LogKey = newKey(t, testOrigin).vkey
		mustFail(t, good, other, "another log key")
		other = l.trust
		other.OperatorKey = newKey(t, OperatorID).vkey
		mustFail(t, good, other, "another operator key")
		other = l.trust
		other.Origin = "example.org/other"
		mustFail(t, good, other, "another origin")
		// A bundle that names the pinned keys but whose checkpoint or
		// events are signed by others.
		bj := decode(t, good)
		bj.LogKey, bj.OperatorKey = other.LogKey, newKey(t, OperatorID).vkey
		forged := Trust{Origin: testOrigin, LogKey: bj.LogKey, OperatorKey: bj.OperatorKey}
		mustFail(t, encode(t, bj), forged, "keys swapped in the bundle")
	})
}

func ExampleVerifyBundle() {
	// A log with one item, registered by an enrolled manufacturer.
	tb := panicTB{}
	f := newFixture(tb)
	f.ok(f.enrollLeaf("acme", RoleManufacturer))
	f.ok(f.registerLeaf("acme", itemX))
	l := newTestLog(tb, f, 2, func(i uint64) uint64 { return i })
	bundle, err := BuildBundle(l.trust, itemX, l.cp.Note, l.entries(tb, itemX))
	if err != nil {
		fmt.Println(err)
		return
	}

	// The verifier pins the origin and both keys, and trusts nothing else.
	h, err := VerifyBundle(bundle, l.trust)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range h.Events {
		fmt.Println(e.Index, e.Event.Kind, e.Event.Actor, e.Role, e.Event.Place)
	}
	fmt.Println(h.Item, h.State.Status, "custodian", h.State.Custodian)

	// The same bundle, checked against another operator key.
	other := l.trust
	other.OperatorKey = newKey(tb, OperatorID).vkey
	_, err = VerifyBundle(bundle, other)
	fmt.Println(errors.Is(err, ErrBadBundle))
	// Output:
	// 1 register acme manufacturer Shenzhen
	// 01/09506000134352/21/X1 in custody custodian acme
	// true
}
