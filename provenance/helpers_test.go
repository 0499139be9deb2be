package provenance

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// A keyPair is a signed-note key generated for a test.
type keyPair struct {
	signer note.Signer
	vkey   string
}

func newKey(t testing.TB, name string) keyPair {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return keyPair{s, vkey}
}

// A fixture is a log in memory with the State that replays it, and the
// keys of its actors.
type fixture struct {
	t      testing.TB
	st     *State
	op     keyPair
	keys   map[string]keyPair
	leaves [][]byte
	time   time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	op := newKey(t, OperatorID)
	st, err := NewState(op.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, op: op, keys: map[string]keyPair{}, time: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

// sign signs e with kp, filling in Time.
func (f *fixture) sign(e Event, kp keyPair) []byte {
	f.t.Helper()
	f.time = f.time.Add(time.Minute)
	if e.Time.IsZero() {
		e.Time = f.time
	}
	leaf, err := Sign(e, kp.signer)
	if err != nil {
		f.t.Fatalf("sign %s: %v", e.Kind, err)
	}
	return leaf
}

// apply applies leaf at the next index, and appends it to the log if it
// is accepted.
func (f *fixture) apply(leaf []byte) (Applied, error) {
	a, err := f.st.Apply(uint64(len(f.leaves)), leaf)
	if err == nil {
		f.leaves = append(f.leaves, leaf)
	}
	return a, err
}

// ok applies leaf and fails the test if it is refused.
func (f *fixture) ok(leaf []byte) Applied {
	f.t.Helper()
	a, err := f.apply(leaf)
	if err != nil {
		f.t.Fatalf("event refused: %v\n%s", err, leaf)
	}
	return a
}

func (f *fixture) key(id string) keyPair {
	kp, ok := f.keys[id]
	if !ok {
		kp = newKey(f.t, id)
		f.keys[id] = kp
	}
	return kp
}

func (f *fixture) enrollLeaf(id string, role Role) []byte {
	kp := f.key(id)
	return f.sign(Event{Kind: KindEnroll, Actor: OperatorID, Enroll: &Actor{ID: id, Role: role, Name: "Test " + id, Key: kp.vkey}}, f.op)
}

func (f *fixture) revokeLeaf(id string) []byte {
	return f.sign(Event{Kind: KindRevoke, Actor: OperatorID, Revoke: &Revoke{ID: id, Reason: "key lost"}}, f.op)
}

func (f *fixture) prev(item ItemID) merkle.Hash {
	it, ok := f.st.Item(item)
	if !ok {
		return merkle.LeafHash([]byte("no such item"))
	}
	return it.Last
}

func (f *fixture) registerLeaf(by string, item ItemID) []byte {
	return f.sign(Event{Kind: KindRegister, Actor: by, Item: item, Place: "Shenzhen",
		Register: &Register{Product: "Handbag <Classic>", Lot: "L-2026/03"}}, f.key(by))
}

func (f *fixture) handoffLeaf(by string, item ItemID, h Handoff) []byte {
	return f.sign(Event{Kind: KindHandoff, Actor: by, Item: item, Prev: f.prev(item), Handoff: &h}, f.key(by))
}

func (f *fixture) receiveLeaf(by string, item ItemID) []byte {
	return f.sign(Event{Kind: KindReceive, Actor: by, Item: item, Prev: f.prev(item), Place: "Hong Kong", Receive: &Receive{By: by}}, f.key(by))
}

func (f *fixture) claimLeaf(item ItemID, code string, buyer keyPair) []byte {
	return f.sign(Event{Kind: KindReceive, Actor: BuyerID, Item: item, Prev: f.prev(item), Receive: &Receive{ClaimCode: code, BuyerKey: buyer.vkey}}, buyer)
}

func (f *fixture) disputeLeaf(by string, kp keyPair, item ItemID) []byte {
	return f.sign(Event{Kind: KindDispute, Actor: by, Item: item, Prev: f.prev(item),
		Dispute: &Dispute{Reason: "stitching differs from the original", Evidence: []string{hex.EncodeToString(make([]byte, 32))}}}, kp)
}

func (f *fixture) rulingLeaf(item ItemID) []byte {
	return f.sign(Event{Kind: KindRuling, Actor: OperatorID, Item: item, Prev: f.prev(item), Ruling: &Ruling{Decision: "genuine; dispute closed"}}, f.op)
}

// rawLeaf signs an arbitrary event text, bypassing Sign's checks.
func rawLeaf(t testing.TB, kp keyPair, jsonLine string) []byte {
	t.Helper()
	leaf, err := note.Sign(&note.Note{Text: EventHeader + "\n" + jsonLine + "\n"}, kp.signer)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// dump renders everything a State holds, for comparing states.
func dump(t testing.TB, s *State) string {
	t.Helper()
	claims := map[string]ItemID{}
	for k, v := range s.claims {
		claims[hex.EncodeToString(k[:])] = v
	}
	b, err := json.Marshal(struct {
		Op     string
		Next   uint64
		Actors []ActorState
		Items  []ItemState
		Claims map[string]ItemID
	}{s.opKey, s.next, s.Actors(), s.Items(), claims})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ruleErr checks err is a *RuleError matching want.
func ruleErr(t testing.TB, err, want error) {
	t.Helper()
	var re *RuleError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *RuleError", err)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %q does not match %q", err, want)
	}
}

// panicTB lets examples use the test helpers: it panics where a test
// would fail.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                        {}
func (panicTB) Fatal(args ...any)              { panic(fmt.Sprint(args...)) }
func (panicTB) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }
