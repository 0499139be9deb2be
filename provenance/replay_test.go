package provenance

import (
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
)

// randomEvents returns n leaves, legal and illegal mixed, made by actors
// acting on a log as it grows: each is applied to the fixture's state as it
// is made, so that many are legal.
func randomEvents(t testing.TB, f *fixture, r *mrand.Rand, n int) [][]byte {
	t.Helper()
	ids := []string{"mfr-1", "mfr-2", "cour-1", "cour-2", "resl-1", "resl-2", "shop-1", "ghost-1"}
	roles := []Role{RoleManufacturer, RoleManufacturer, RoleCourier, RoleCourier, RoleReseller, RoleReseller, RoleBuyer, RoleCourier}
	var items []ItemID
	for i := range 300 {
		items = append(items, ItemID{GTIN: "09506000134352", Serial: fmt.Sprintf("S%d", i)})
	}
	codes := map[ItemID]string{}
	buyers := map[ItemID]keyPair{}
	pick := func() string { return ids[r.IntN(len(ids))] }
	var out [][]byte
	for len(out) < n {
		item := items[r.IntN(len(items))]
		if reg := f.st.Items(); len(reg) > 0 && r.IntN(5) != 0 {
			item = reg[r.IntN(len(reg))].ID
		}
		it, _ := f.st.Item(item)
		var leaf []byte
		switch k := r.IntN(100); {
		case k < 8:
			i := r.IntN(len(ids))
			if a, ok := f.st.Actor(ids[i]); ok && a.Revoked && r.IntN(4) != 0 {
				delete(f.keys, ids[i]) // a rotation
			}
			leaf = f.enrollLeaf(ids[i], roles[i])
		case k < 9 || k == 99 && r.IntN(3) == 0:
			leaf = f.revokeLeaf(pick())
		case k < 25:
			leaf = f.registerLeaf(pick(), item)
		case k < 45:
			by := it.Custodian
			if by == "" || r.IntN(5) == 0 {
				by = pick()
			}
			if by == BuyerID {
				by = pick()
			}
			if r.IntN(3) == 0 {
				code, h, err := NewClaim(rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				codes[item] = code
				leaf = f.handoffLeaf(by, item, h)
			} else {
				to := pick()
				if to == by {
					to = ids[(r.IntN(len(ids)-1)+1+indexOf(ids, by))%len(ids)]
				}
				leaf = f.handoffLeaf(by, item, Handoff{To: to})
			}
		case k < 65:
			if it.Pending != nil && it.Pending.To == "" {
				code := codes[item]
				if r.IntN(5) == 0 {
					code = "WRONG-CODE"
				}
				buyers[item] = newKey(t, BuyerID)
				leaf = f.claimLeaf(item, code, buyers[item])
			} else {
				by := pick()
				if it.Pending != nil && r.IntN(4) != 0 {
					by = it.Pending.To
				}
				leaf = f.receiveLeaf(by, item)
			}
		case k < 72:
			if b, ok := buyers[item]; ok && r.IntN(2) == 0 {
				leaf = f.disputeLeaf(BuyerID, b, item)
			} else {
				by := pick()
				leaf = f.disputeLeaf(by, f.key(by), item)
			}
		case k < 78:
			leaf = f.rulingLeaf(item)
		case k < 84 && len(f.leaves) > 0: // replay
			leaf = f.leaves[r.IntN(len(f.leaves))]
		case k < 88: // stale prev
			by := pick()
			leaf = f.sign(Event{Kind: KindHandoff, Actor: by, Item: item, Prev: merkle.LeafHash([]byte{byte(k)}), Handoff: &Handoff{To: by + "x"}}, f.key(by))
		case k < 92: // wrong key
			leaf = f.sign(Event{Kind: KindRegister, Actor: "mfr-1", Item: item, Register: &Register{Product: "p"}}, newKey(t, "mfr-1"))
		default: // damaged
			if len(out) == 0 {
				continue
			}
			leaf = []byte(string(out[r.IntN(len(out))]))
			leaf[r.IntN(len(leaf))] ^= byte(1 + r.IntN(255))
		}
		f.apply(leaf) // legal or not; the fixture's log keeps the legal ones
		out = append(out, leaf)
	}
	return out
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return 0
}

func TestReplayDeterminism(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 500
	}
	for seed := range uint64(2) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			f := newFixture(t)
			f.time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			leaves := randomEvents(t, f, mrand.New(mrand.NewPCG(seed, 42)), n)
			s1, _ := NewState(f.op.vkey)
			s2, _ := NewState(f.op.vkey)
			accepted := 0
			kinds := map[string]int{}
			acceptedKinds := map[Kind]bool{}
			for i, leaf := range leaves {
				before := dump(t, s1)
				_, err1 := s1.Apply(uint64(i), leaf)
				_, err2 := s2.Apply(uint64(i), leaf)
				if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
					t.Fatalf("leaf %d: %v vs %v", i, err1, err2)
				}
				if err1 != nil {
					if dump(t, s1) != before {
						t.Fatalf("refused leaf %d changed the state: %v", i, err1)
					}
					kinds[sentinelName(err1)]++
					continue
				}
				accepted++
				e, _ := ParseEvent(leaf)
				acceptedKinds[e.Kind] = true
			}
			if d1, d2 := dump(t, s1), dump(t, s2); d1 != d2 {
				t.Fatal("two replays differ")
			}
			// The fixture applied the accepted leaves at other indices, but
			// the items and the claims used are the same.
			if fmt.Sprint(itemsOnly(f.st)) != fmt.Sprint(itemsOnly(s1)) {
				t.Fatal("replay differs from the state that made the log")
			}
			t.Logf("%d leaves, %d accepted; refused: %v", len(leaves), accepted, kinds)
			if accepted < len(leaves)/20 || len(acceptedKinds) != 7 || accepted == len(leaves) {
				t.Fatalf("poor mix: %d of %d accepted, kinds %v", accepted, len(leaves), acceptedKinds)
			}
		})
	}
}

// sentinelName names the sentinel err matches, to show the mix.
func sentinelName(err error) string {
	for _, s := range []error{ErrMalformedEvent, ErrBadSignature, ErrNotFound, ErrWrongRole, ErrRevoked,
		ErrAlreadyEnrolled, ErrAlreadyRegistered, ErrNotCustodian, ErrWrongReceiver, ErrNoHandoff,
		ErrStalePrev, ErrBadClaim, ErrClaimUsed, ErrNotParty, ErrDisputed, ErrNotDisputed, ErrDelivered} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return "other: " + err.Error()
}

// itemsOnly returns what does not depend on log positions.
func itemsOnly(s *State) []string {
	var out []string
	for _, it := range s.Items() {
		out = append(out, fmt.Sprint(it.ID, it.Status, it.Custodian, it.Parties, it.Events, it.BuyerKey))
	}
	return out
}
