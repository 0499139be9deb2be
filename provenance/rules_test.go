package provenance

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

var (
	itemX = ItemID{GTIN: "09506000134352", Serial: "X1"}
	itemY = ItemID{GTIN: "09506000134352", Serial: "Y2"}
)

// base enrolls acme (manufacturer), swift and other (couriers) and daigou
// (reseller), and registers itemX by acme.
func base(f *fixture) {
	f.t.Helper()
	f.ok(f.enrollLeaf("acme", RoleManufacturer))
	f.ok(f.enrollLeaf("swift", RoleCourier))
	f.ok(f.enrollLeaf("other", RoleCourier))
	f.ok(f.enrollLeaf("daigou", RoleReseller))
	f.ok(f.registerLeaf("acme", itemX))
}

func TestCustodyJourney(t *testing.T) {
	f := newFixture(t)
	base(f)
	f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
	if it, _ := f.st.Item(itemX); it.Status != StatusInTransit || it.Custodian != "acme" {
		t.Fatalf("after handoff: %+v", it)
	}
	f.ok(f.receiveLeaf("swift", itemX))
	f.ok(f.handoffLeaf("swift", itemX, Handoff{To: "daigou"}))
	f.ok(f.receiveLeaf("daigou", itemX))
	code, h, err := NewClaim(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f.ok(f.handoffLeaf("daigou", itemX, h))
	buyer := newKey(t, BuyerID)
	a := f.ok(f.claimLeaf(itemX, code, buyer))
	if a.Role != RoleBuyer {
		t.Errorf("buyer receive applied with role %q", a.Role)
	}
	it, _ := f.st.Item(itemX)
	if it.Status != StatusDelivered || it.Custodian != BuyerID || it.BuyerKey != buyer.vkey || it.DeliveredAt != a.Index {
		t.Fatalf("after buyer receive: %+v", it)
	}
	if got, want := strings.Join(it.Parties, ","), "acme,buyer,daigou,swift"; got != want {
		t.Errorf("parties %s, want %s", got, want)
	}
	// The buyer reports a problem with the same one-off key; the operator rules.
	f.ok(f.disputeLeaf(BuyerID, buyer, itemX))
	if it, _ := f.st.Item(itemX); it.Status != StatusDisputed {
		t.Fatalf("after dispute: %s", it.Status)
	}
	f.ok(f.rulingLeaf(itemX))
	if it, _ := f.st.Item(itemX); it.Status != StatusDelivered || it.Dispute != nil || it.Events != 9 {
		t.Fatalf("after ruling: %+v", it)
	}
	// A handoff may supersede a pending one; key rotation after revocation.
	f.ok(f.registerLeaf("acme", itemY))
	f.ok(f.handoffLeaf("acme", itemY, Handoff{To: "swift"}))
	f.ok(f.handoffLeaf("acme", itemY, Handoff{To: "other"}))
	f.ok(f.receiveLeaf("other", itemY))
	f.ok(f.revokeLeaf("other"))
	delete(f.keys, "other")
	f.ok(f.enrollLeaf("other", RoleCourier))
	f.ok(f.handoffLeaf("other", itemY, Handoff{To: "daigou"}))
	a2, _ := f.st.Actor("other")
	if len(a2.Keys) != 2 || !a2.Keys[0].Revoked || a2.Revoked {
		t.Fatalf("rotated actor: %+v", a2)
	}
}

func TestCustodyRefusals(t *testing.T) {
	claimed := func(f *fixture) (code string, h Handoff) {
		code, h, err := NewClaim(rand.Reader)
		if err != nil {
			f.t.Fatal(err)
		}
		f.ok(f.handoffLeaf("acme", itemX, h))
		return code, h
	}
	tests := []struct {
		name  string
		leaf  func(f *fixture) []byte // applies legal events, returns the refused one
		index func(f *fixture) uint64 // default: the next index
		want  error
	}{
		{"wrong custodian", func(f *fixture) []byte {
			return f.handoffLeaf("swift", itemX, Handoff{To: "daigou"})
		}, nil, ErrNotCustodian},
		{"wrong receiver", func(f *fixture) []byte {
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			return f.receiveLeaf("other", itemX)
		}, nil, ErrWrongReceiver},
		{"receive by name of a claim handoff", func(f *fixture) []byte {
			claimed(f)
			return f.receiveLeaf("swift", itemX)
		}, nil, ErrWrongReceiver},
		{"receive by claim of a named handoff", func(f *fixture) []byte {
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			return f.claimLeaf(itemX, "ABCDEFGHJK", newKey(f.t, BuyerID))
		}, nil, ErrWrongReceiver},
		{"receive without handoff", func(f *fixture) []byte {
			return f.receiveLeaf("swift", itemX)
		}, nil, ErrNoHandoff},
		{"replayed receive", func(f *fixture) []byte {
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			leaf := f.receiveLeaf("swift", itemX)
			f.ok(leaf)
			return leaf
		}, nil, ErrStalePrev},
		{"replayed handoff", func(f *fixture) []byte {
			leaf := f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
			f.ok(leaf)
			return leaf
		}, nil, ErrStalePrev},
		{"replayed enroll", func(f *fixture) []byte {
			return f.leaves[0]
		}, nil, ErrAlreadyEnrolled},
		{"stale prev", func(f *fixture) []byte {
			h := f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "other"})) // moves prev on
			return h
		}, nil, ErrStalePrev},
		{"key revoked before the event", func(f *fixture) []byte {
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			f.ok(f.revokeLeaf("swift"))
			return f.receiveLeaf("swift", itemX)
		}, nil, ErrRevoked},
		{"revoked key matches ErrKeyNotValid", func(f *fixture) []byte {
			f.ok(f.revokeLeaf("acme"))
			return f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
		}, nil, ErrKeyNotValid},
		{"old key after rotation", func(f *fixture) []byte {
			old := f.keys["acme"]
			f.ok(f.revokeLeaf("acme"))
			delete(f.keys, "acme")
			f.ok(f.enrollLeaf("acme", RoleManufacturer))
			return f.sign(Event{Kind: KindHandoff, Actor: "acme", Item: itemX, Prev: f.prev(itemX), Handoff: &Handoff{To: "swift"}}, old)
		}, nil, ErrRevoked},
		{"re-enroll with the revoked key", func(f *fixture) []byte {
			f.ok(f.revokeLeaf("swift"))
			return f.enrollLeaf("swift", RoleCourier)
		}, nil, ErrAlreadyEnrolled},
		{"revoke twice", func(f *fixture) []byte {
			f.ok(f.revokeLeaf("swift"))
			return f.revokeLeaf("swift")
		}, nil, ErrRevoked},
		{"handoff to a revoked actor", func(f *fixture) []byte {
			f.ok(f.revokeLeaf("swift"))
			return f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
		}, nil, ErrRevoked},
		{"handoff to an unknown actor", func(f *fixture) []byte {
			return f.handoffLeaf("acme", itemX, Handoff{To: "ghost"})
		}, nil, ErrNotFound},
		{"handoff to the operator", func(f *fixture) []byte {
			return f.handoffLeaf("acme", itemX, Handoff{To: OperatorID})
		}, nil, ErrWrongRole},
		{"double registration", func(f *fixture) []byte {
			return f.registerLeaf("acme", itemX)
		}, nil, ErrAlreadyRegistered},
		{"unknown item", func(f *fixture) []byte {
			return f.sign(Event{Kind: KindHandoff, Actor: "acme", Item: itemY, Prev: f.prev(itemX), Handoff: &Handoff{To: "swift"}}, f.key("acme"))
		}, nil, ErrNotFound},
		{"unknown actor", func(f *fixture) []byte {
			return f.registerLeaf("ghost", itemY)
		}, nil, ErrNotFound},
		{"courier registers", func(f *fixture) []byte {
			return f.registerLeaf("swift", itemY)
		}, nil, ErrWrongRole},
		{"actor enrolls", func(f *fixture) []byte {
			return f.sign(Event{Kind: KindEnroll, Actor: "acme", Enroll: &Actor{ID: "fake", Role: RoleCourier, Name: "Fake", Key: newKey(f.t, "fake").vkey}}, f.key("acme"))
		}, nil, ErrWrongRole},
		{"operator registers", func(f *fixture) []byte {
			return f.sign(Event{Kind: KindRegister, Actor: OperatorID, Item: itemY, Register: &Register{Product: "p"}}, f.op)
		}, nil, ErrWrongRole},
		{"buyer-role actor hands off", func(f *fixture) []byte {
			f.ok(f.enrollLeaf("shopper", RoleBuyer))
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "shopper"}))
			f.ok(f.receiveLeaf("shopper", itemX))
			return f.handoffLeaf("shopper", itemX, Handoff{To: "swift"})
		}, nil, ErrWrongRole},
		{"bad check digit", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind":"register","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134353/21/Z","register":{"product":"p"}}`)
		}, nil, ErrMalformedEvent},
		{"claim code reused on another item", func(f *fixture) []byte {
			code, h := claimed(f)
			f.ok(f.claimLeaf(itemX, code, newKey(f.t, BuyerID)))
			f.ok(f.registerLeaf("acme", itemY))
			return f.handoffLeaf("acme", itemY, h)
		}, nil, ErrClaimUsed},
		{"wrong claim code", func(f *fixture) []byte {
			claimed(f)
			return f.claimLeaf(itemX, "WRONGCODE123", newKey(f.t, BuyerID))
		}, nil, ErrBadClaim},
		{"impostor key", func(f *fixture) []byte {
			return f.sign(Event{Kind: KindHandoff, Actor: "acme", Item: itemX, Prev: f.prev(itemX), Handoff: &Handoff{To: "swift"}}, newKey(f.t, "acme"))
		}, nil, ErrBadSignature},
		{"altered text", func(f *fixture) []byte {
			leaf := f.receiveLeaf("acme", itemX)
			return []byte(strings.Replace(string(leaf), "Hong Kong", "Hong Kang", 1))
		}, nil, ErrBadSignature},
		{"another buyer disputes", func(f *fixture) []byte {
			code, _ := claimed(f)
			f.ok(f.claimLeaf(itemX, code, newKey(f.t, BuyerID)))
			return f.disputeLeaf(BuyerID, newKey(f.t, BuyerID), itemX)
		}, nil, ErrBadSignature},
		{"dispute by a stranger", func(f *fixture) []byte {
			return f.disputeLeaf("daigou", f.key("daigou"), itemX)
		}, nil, ErrNotParty},
		{"buyer dispute before delivery", func(f *fixture) []byte {
			return f.disputeLeaf(BuyerID, newKey(f.t, BuyerID), itemX)
		}, nil, ErrNotParty},
		{"handoff while disputed", func(f *fixture) []byte {
			f.ok(f.disputeLeaf("acme", f.key("acme"), itemX))
			return f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
		}, nil, ErrDisputed},
		{"receive while disputed", func(f *fixture) []byte {
			f.ok(f.handoffLeaf("acme", itemX, Handoff{To: "swift"}))
			f.ok(f.disputeLeaf("acme", f.key("acme"), itemX))
			return f.receiveLeaf("swift", itemX)
		}, nil, ErrDisputed},
		{"ruling without dispute", func(f *fixture) []byte {
			return f.rulingLeaf(itemX)
		}, nil, ErrNotDisputed},
		{"handoff after delivery", func(f *fixture) []byte {
			code, _ := claimed(f)
			f.ok(f.claimLeaf(itemX, code, newKey(f.t, BuyerID)))
			return f.handoffLeaf("acme", itemX, Handoff{To: "swift"})
		}, nil, ErrDelivered},
		{"malformed JSON", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind":"register","actor":"acme"`)
		}, nil, ErrMalformedEvent},
		{"unknown field", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind":"register","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134352/21/Z","register":{"product":"p","colour":"red"}}`)
		}, nil, ErrMalformedEvent},
		{"duplicate key", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind":"register","actor":"acme","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134352/21/Z","register":{"product":"p"}}`)
		}, nil, ErrMalformedEvent},
		{"key in another case", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"Kind":"register","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134352/21/Z","register":{"product":"p"}}`)
		}, nil, ErrMalformedEvent},
		{"trailing data", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind":"register","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134352/21/Z","register":{"product":"p"}}{}`)
		}, nil, ErrMalformedEvent},
		{"not compact", func(f *fixture) []byte {
			return rawLeaf(f.t, f.key("acme"), `{"kind": "register","actor":"acme","time":"2026-03-01T10:00:00Z","item":"01/09506000134352/21/Z","register":{"product":"p"}}`)
		}, nil, ErrMalformedEvent},
		{"two signatures", func(f *fixture) []byte {
			leaf := f.registerLeaf("acme", itemY)
			text, _, _ := strings.Cut(string(leaf), "\n\n")
			twice, err := note.Sign(&note.Note{Text: text + "\n"}, f.key("acme").signer, f.key("swift").signer)
			if err != nil {
				f.t.Fatal(err)
			}
			return twice
		}, nil, ErrMalformedEvent},
		{"text after the signature", func(f *fixture) []byte {
			return append(f.registerLeaf("acme", itemY), "more\n"...)
		}, nil, ErrMalformedEvent},
		{"signature of 32 bytes", func(f *fixture) []byte {
			return withSignatureBytes(f.t, f.registerLeaf("acme", itemY), 4+32)
		}, nil, ErrMalformedEvent},
		{"signature of 65 bytes", func(f *fixture) []byte {
			return withSignatureBytes(f.t, f.registerLeaf("acme", itemY), 4+65)
		}, nil, ErrMalformedEvent},
		{"signature base64 not canonical", func(f *fixture) []byte {
			return otherBase64(f.registerLeaf("acme", itemY))
		}, nil, ErrMalformedEvent},
		{"signature line twice", func(f *fixture) []byte {
			leaf := f.registerLeaf("acme", itemY)
			return append(leaf, sigBlock(leaf)...)
		}, nil, ErrMalformedEvent},
		{"index out of order", func(f *fixture) []byte {
			return f.registerLeaf("acme", itemY)
		}, func(f *fixture) uint64 { return 2 }, ErrOutOfOrder},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			base(f)
			leaf := tc.leaf(f)
			index := uint64(len(f.leaves))
			if tc.index != nil {
				index = tc.index(f)
			}
			before := dump(t, f.st)
			_, err := f.st.Check(index, leaf)
			ruleErr(t, err, tc.want)
			_, err2 := f.st.Apply(index, leaf)
			ruleErr(t, err2, tc.want)
			if err.Error() != err2.Error() {
				t.Errorf("Check said %q, Apply %q", err, err2)
			}
			t.Logf("%v", err2)
			if after := dump(t, f.st); after != before {
				t.Fatalf("refused event changed the state")
			}
		})
	}
}

func TestNewState(t *testing.T) {
	if _, err := NewState("garbage"); err == nil {
		t.Error("NewState accepted a malformed key")
	}
	if _, err := NewState(newKey(t, BuyerID).vkey); err == nil {
		t.Error("NewState accepted an operator named buyer")
	}
	op := newKey(t, "ops-1")
	st, err := NewState(op.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := st.Operator(); id != "ops-1" {
		t.Errorf("operator id %q", id)
	}
	// Enrolling the operator's own name is refused.
	leaf, err := Sign(Event{Kind: KindEnroll, Actor: "ops-1", Time: time.Now(), Enroll: &Actor{ID: "ops-1", Role: RoleCourier, Name: "x", Key: newKey(t, "ops-1").vkey}}, op.signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(0, leaf); !errors.Is(err, ErrAlreadyEnrolled) {
		t.Errorf("enrolling the operator: %v", err)
	}
}

// withSignatureBytes replaces the signature of a one-signature note leaf
// by n bytes: its key hash, then the signature cut or padded with zeroes.
func withSignatureBytes(t testing.TB, leaf []byte, n int) []byte {
	t.Helper()
	head, line, ok := strings.Cut(strings.TrimSuffix(string(leaf), "\n"), "\n\n")
	name, b64, ok2 := strings.Cut(strings.TrimPrefix(line, "\u2014 "), " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if !ok || !ok2 || err != nil {
		t.Fatalf("not a one-signature note: %q", leaf)
	}
	raw = append(raw, make([]byte, max(0, n-len(raw)))...)[:n]
	return []byte(head + "\n\n\u2014 " + name + " " + base64.StdEncoding.EncodeToString(raw) + "\n")
}
