package provenance_test

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

const origin = "provtrail.test/log"

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

// A world is a Service on a real bbolt file, with its keys.
type world struct {
	t       testing.TB
	dir     string
	logKey  keyPair
	op      keyPair
	trust   provenance.Trust
	keys    map[string]keyPair
	clock   time.Time
	db      *bbolt.DB
	log     *boltlog.Log
	store   *boltstore.Store
	svc     *provenance.Service
	rng     *rand.Rand
	linger  time.Duration // the log's Config.MaxWait
	nextGTI int
	now     func() time.Time // the Service's clock; nil for time.Now
}

func newWorld(t testing.TB) *world {
	t.Helper()
	return newWorldLinger(t, 0)
}

// newWorldLinger is newWorld with the log's Config.MaxWait set to linger.
func newWorldLinger(t testing.TB, linger time.Duration) *world {
	t.Helper()
	w := &world{
		linger: linger,
		t:      t,
		dir:    t.TempDir(),
		logKey: newKey(t, origin),
		op:     newKey(t, provenance.OperatorID),
		keys:   map[string]keyPair{},
		clock:  time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC),
		rng:    rand.New(rand.NewPCG(1, 2)),
	}
	w.trust = provenance.Trust{Origin: origin, LogKey: w.logKey.vkey, OperatorKey: w.op.vkey}
	w.open()
	t.Cleanup(w.close)
	return w
}

func (w *world) config() provenance.ServiceConfig {
	return provenance.ServiceConfig{Log: w.log, Store: w.store, Trust: w.trust, SaveEvery: 64, PollInterval: time.Hour, Now: w.now}
}

func (w *world) open() {
	w.t.Helper()
	db, err := boltlog.OpenDB(filepath.Join(w.dir, "provtrail.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.db = db
	if w.log, err = boltlog.Open(w.t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: w.logKey.signer, MaxWait: w.linger}); err != nil {
		w.t.Fatal(err)
	}
	if w.store, err = boltstore.Open(db); err != nil {
		w.t.Fatal(err)
	}
	if w.svc, err = provenance.NewService(w.t.Context(), w.config()); err != nil {
		w.t.Fatal(err)
	}
}

// dumpIndex returns the whole index in store, as Dump writes it.
func dumpIndex(t testing.TB, store *boltstore.Store) string {
	t.Helper()
	var b strings.Builder
	if err := store.Dump(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func (w *world) close() {
	if w.db == nil {
		return
	}
	if err := w.svc.Close(); err != nil {
		w.t.Error(err)
	}
	w.log.Close()
	w.db.Close()
	w.db = nil
}

func (w *world) key(id string) keyPair {
	kp, ok := w.keys[id]
	if !ok {
		kp = newKey(w.t, id)
		w.keys[id] = kp
	}
	return kp
}

func (w *world) sign(e provenance.Event, kp keyPair) []byte {
	w.t.Helper()
	w.clock = w.clock.Add(time.Minute)
	e.Time = w.clock
	leaf, err := provenance.Sign(e, kp.signer)
	if err != nil {
		w.t.Fatalf("sign %s: %v", e.Kind, err)
	}
	return leaf
}

func (w *world) size() uint64 {
	w.t.Helper()
	cp, err := w.log.Checkpoint(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	return cp.Size
}

// ok submits leaf and fails the test unless it is accepted with a receipt
// that verifies offline.
func (w *world) ok(leaf []byte) provenance.Receipt {
	w.t.Helper()
	r, err := w.svc.Submit(w.t.Context(), leaf)
	if err != nil {
		w.t.Fatalf("refused: %v\n%s", err, leaf)
	}
	v, _ := note.NewVerifier(w.logKey.vkey)
	_, idx, err := merkle.VerifyProof(r.Proof, leaf, origin, v)
	if err != nil || idx != r.Index {
		w.t.Fatalf("receipt does not verify: index %d, %v", idx, err)
	}
	return r
}

func (w *world) enroll(id string, role provenance.Role) []byte {
	return w.sign(provenance.Event{Kind: provenance.KindEnroll, Actor: provenance.OperatorID,
		Enroll: &provenance.Actor{ID: id, Role: role, Name: "Test " + id, Key: w.key(id).vkey}}, w.op)
}

func (w *world) revoke(id string) []byte {
	return w.sign(provenance.Event{Kind: provenance.KindRevoke, Actor: provenance.OperatorID,
		Revoke: &provenance.Revoke{ID: id, Reason: "key lost"}}, w.op)
}

func (w *world) newItem() provenance.ItemID {
	w.nextGTI++
	gtin := fmt.Sprintf("0950600013%03d", w.nextGTI%1000)
	gtin += string(rune(provenance.CheckDigit(gtin)))
	id, err := provenance.NewItemID(gtin, fmt.Sprintf("S%d", w.nextGTI))
	if err != nil {
		w.t.Fatal(err)
	}
	return id
}

func (w *world) prev(item provenance.ItemID) merkle.Hash {
	v, err := w.svc.Item(w.t.Context(), item)
	if err != nil {
		return merkle.LeafHash([]byte("no such item"))
	}
	return v.State.Last
}

func (w *world) register(by string, item provenance.ItemID) []byte {
	return w.sign(provenance.Event{Kind: provenance.KindRegister, Actor: by, Item: item, Place: "Shenzhen",
		Register: &provenance.Register{Product: "Handbag <b>Classic</b>", Lot: "L1"}}, w.key(by))
}

func (w *world) handoff(by string, item provenance.ItemID, h provenance.Handoff) []byte {
	return w.sign(provenance.Event{Kind: provenance.KindHandoff, Actor: by, Item: item, Prev: w.prev(item), Handoff: &h}, w.key(by))
}

func (w *world) receive(by string, item provenance.ItemID) []byte {
	return w.sign(provenance.Event{Kind: provenance.KindReceive, Actor: by, Item: item, Prev: w.prev(item), Place: "Hong Kong",
		Receive: &provenance.Receive{By: by}}, w.key(by))
}

func (w *world) claim(item provenance.ItemID, code string) []byte {
	buyer := newKey(w.t, provenance.BuyerID)
	return w.sign(provenance.Event{Kind: provenance.KindReceive, Actor: provenance.BuyerID, Item: item, Prev: w.prev(item),
		Receive: &provenance.Receive{ClaimCode: code, BuyerKey: buyer.vkey}}, buyer)
}

func TestServiceCustodyChain(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))
	w.ok(w.enroll("daigou-li", provenance.RoleReseller))
	item := w.newItem()
	w.ok(w.register("acme", item))
	w.ok(w.handoff("acme", item, provenance.Handoff{To: "swift"}))
	w.ok(w.receive("swift", item))
	w.ok(w.handoff("swift", item, provenance.Handoff{To: "daigou-li"}))
	w.ok(w.receive("daigou-li", item))
	code, h, err := provenance.NewClaim(crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	w.ok(w.handoff("daigou-li", item, h))
	w.ok(w.claim(item, code))

	v, err := w.svc.Item(t.Context(), item)
	if err != nil {
		t.Fatal(err)
	}
	if v.State.Status != provenance.StatusDelivered || len(v.Events) != 7 {
		t.Fatalf("item is %s with %d events, want delivered with 7", v.State.Status, len(v.Events))
	}
	bundle, err := w.svc.Bundle(t.Context(), item)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := provenance.VerifyBundle(bundle, w.trust)
	if err != nil {
		t.Fatalf("the server's own bundle does not verify: %v", err)
	}
	if hist.State.Status != provenance.StatusDelivered || len(hist.Events) != 7 {
		t.Fatalf("verified history: %s, %d events", hist.State.Status, len(hist.Events))
	}
	other := w.trust
	other.LogKey = newKey(t, origin).vkey
	if _, err := provenance.VerifyBundle(bundle, other); err == nil {
		t.Fatal("bundle verified against another log key")
	}

	// The courier's page lists what it signed and its enrollment, newest
	// first, and so does the index after a restart.
	want := []provenance.Kind{provenance.KindHandoff, provenance.KindReceive, provenance.KindEnroll}
	for round := range 2 {
		evs, err := w.svc.ActorEvents(t.Context(), "swift")
		if err != nil {
			t.Fatal(err)
		}
		var got []provenance.Kind
		for _, e := range evs {
			got = append(got, e.Event.Kind)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("round %d: swift's events are %v, want %v", round, got, want)
		}
		w.close()
		w.open()
	}
	if _, err := w.svc.ActorEvents(t.Context(), "nobody"); !errors.Is(err, provenance.ErrNotFound) {
		t.Fatalf("events of an unknown actor: %v", err)
	}
}

// TestServiceRefusals submits illegal events: each is refused with its
// sentinel error and nothing is appended.
func TestServiceRefusals(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))
	w.ok(w.enroll("zoom", provenance.RoleCourier))
	item := w.newItem()
	w.ok(w.register("acme", item))
	stale := w.handoff("acme", item, provenance.Handoff{To: "swift"})
	w.ok(w.handoff("acme", item, provenance.Handoff{To: "zoom"}))
	tampered := w.receive("zoom", item)
	// Change one base64 digit of the signature to another digit (flipping
	// a bit could make it no base64 at all: a malformed note).
	if c := &tampered[len(tampered)-5]; *c == 'A' {
		*c = 'B'
	} else {
		*c = 'A'
	}

	for _, tc := range []struct {
		name string
		leaf []byte
		want error
	}{
		{"hand off by a non-custodian", w.handoff("swift", item, provenance.Handoff{To: "zoom"}), provenance.ErrNotCustodian},
		{"receive by the wrong receiver", w.receive("swift", item), provenance.ErrWrongReceiver},
		{"stale prev", stale, provenance.ErrStalePrev},
		{"register twice", w.register("acme", item), provenance.ErrAlreadyRegistered},
		{"register by a courier", w.register("swift", w.newItem()), provenance.ErrWrongRole},
		{"handoff of an unknown item", w.handoff("acme", w.newItem(), provenance.Handoff{To: "swift"}), provenance.ErrNotFound},
		{"unenrolled signer", w.register("nobody", w.newItem()), provenance.ErrNotFound},
		{"forged signature", tampered, provenance.ErrBadSignature},
		{"not an event", []byte("hello\n"), provenance.ErrMalformedEvent},
		{"empty", nil, provenance.ErrMalformedEvent},
		{"enrolled twice", w.enroll("acme", provenance.RoleManufacturer), provenance.ErrAlreadyEnrolled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := w.size()
			_, err := w.svc.Submit(t.Context(), tc.leaf)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			// Nothing was logged, so no log position is named.
			var re *provenance.RuleError
			if !errors.As(err, &re) || !re.NotLogged || strings.HasPrefix(err.Error(), "event ") && !strings.HasPrefix(err.Error(), "event refused: ") {
				t.Errorf("refusal %q: want a RuleError that names no log position", err)
			}
			if after := w.size(); after != before {
				t.Fatalf("log grew from %d to %d", before, after)
			}
		})
	}
	t.Run("revoked key", func(t *testing.T) {
		w.ok(w.revoke("zoom"))
		before := w.size()
		if _, err := w.svc.Submit(t.Context(), w.receive("zoom", item)); !errors.Is(err, provenance.ErrRevoked) {
			t.Fatalf("got %v, want ErrRevoked", err)
		}
		if w.size() != before {
			t.Fatal("log grew")
		}
	})
}

func TestServiceRetryIsDuplicate(t *testing.T) {
	w := newWorld(t)
	enroll := w.enroll("acme", provenance.RoleManufacturer)
	first := w.ok(enroll)
	item := w.newItem()
	reg := w.register("acme", item)
	r1 := w.ok(reg)
	size := w.size()
	for _, tc := range []struct {
		leaf []byte
		want uint64
	}{{enroll, first.Index}, {reg, r1.Index}} {
		r, err := w.svc.Submit(t.Context(), tc.leaf)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Duplicate || r.Index != tc.want {
			t.Fatalf("retry: index %d duplicate %v, want index %d duplicate", r.Index, r.Duplicate, tc.want)
		}
	}
	if w.size() != size {
		t.Fatal("a retry appended")
	}
}

// TestServiceConcurrentItems drives many items at once and checks every
// history.
func TestServiceConcurrentItems(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))
	items := make([]provenance.ItemID, 24)
	leaves := make([][][]byte, len(items))
	for i := range items {
		items[i] = w.newItem()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex // world's signing helpers are not concurrent
	for i, item := range items {
		wg.Go(func() {
			for step := range 3 {
				mu.Lock()
				var leaf []byte
				switch step {
				case 0:
					leaf = w.register("acme", item)
				case 1:
					leaf = w.handoff("acme", item, provenance.Handoff{To: "swift"})
				case 2:
					leaf = w.receive("swift", item)
				}
				mu.Unlock()
				if _, err := w.svc.Submit(t.Context(), leaf); err != nil {
					t.Errorf("item %d step %d: %v", i, step, err)
					return
				}
				leaves[i] = append(leaves[i], leaf)
			}
		})
	}
	wg.Wait()
	for i, item := range items {
		v, err := w.svc.Item(t.Context(), item)
		if err != nil {
			t.Fatal(err)
		}
		if v.State.Custodian != "swift" || len(v.Events) != 3 {
			t.Fatalf("item %d: custodian %q, %d events", i, v.State.Custodian, len(v.Events))
		}
	}
}

// TestReplayEqualsLive drives a random mix of legal and illegal events
// (some of them appended to the log directly, so that the rules must
// refuse them on replay), then checks that a rebuild from the log gives
// exactly the saved live index, and a restart gives the same histories.
func TestReplayEqualsLive(t *testing.T) {
	w := newWorld(t)
	n := 1500
	if testing.Short() {
		n = 400
	}
	actors := []string{"mfr-1", "mfr-2", "courier-1", "courier-2", "courier-3", "reseller-1", "reseller-2"}
	roles := map[string]provenance.Role{"mfr-1": provenance.RoleManufacturer, "mfr-2": provenance.RoleManufacturer,
		"courier-1": provenance.RoleCourier, "courier-2": provenance.RoleCourier, "courier-3": provenance.RoleCourier,
		"reseller-1": provenance.RoleReseller, "reseller-2": provenance.RoleReseller}
	for _, a := range actors {
		w.ok(w.enroll(a, roles[a]))
	}
	var items []provenance.ItemID
	codes := map[provenance.ItemID]string{}
	pick := func(s []string) string { return s[w.rng.IntN(len(s))] }
	other := func(not string) string {
		for {
			if a := pick(actors); a != not {
				return a
			}
		}
	}
	accepted, refused, direct := 0, 0, 0
	for range n {
		var leaf []byte
		switch op := w.rng.IntN(10); {
		case op < 2 || len(items) == 0:
			it := w.newItem()
			items = append(items, it)
			leaf = w.register(pick(actors[:3]), it) // sometimes a courier: refused
		default:
			it := items[w.rng.IntN(len(items))]
			v, err := w.svc.Item(t.Context(), it)
			if err != nil {
				by := pick(actors)
				leaf = w.handoff(by, it, provenance.Handoff{To: other(by)})
				break
			}
			custodian := v.State.Custodian
			if w.rng.IntN(4) == 0 || custodian == provenance.BuyerID {
				custodian = pick(actors) // often the wrong one
			}
			switch {
			case v.State.Pending != nil && v.State.Pending.To == "" && codes[it] != "":
				code := codes[it]
				if w.rng.IntN(5) == 0 {
					code = "WRONG-CODE-123"
				}
				leaf = w.claim(it, code)
			case v.State.Pending != nil && w.rng.IntN(3) > 0:
				leaf = w.receive(v.State.Pending.To, it)
			case w.rng.IntN(8) == 0:
				code, h, err := provenance.NewClaim(crand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				codes[it] = code
				leaf = w.handoff(custodian, it, h)
			default:
				leaf = w.handoff(custodian, it, provenance.Handoff{To: other(custodian)})
			}
		}
		if w.rng.IntN(20) == 0 {
			// Straight into the log, unchecked: the replay must refuse it
			// if it is illegal, on every replica alike.
			if _, err := w.log.Append(t.Context(), [][]byte{leaf}); err != nil {
				t.Fatal(err)
			}
			direct++
			continue
		}
		if _, err := w.svc.Submit(t.Context(), leaf); err != nil {
			var re *provenance.RuleError
			if !errors.As(err, &re) {
				t.Fatalf("submit: %v", err)
			}
			refused++
		} else {
			accepted++
		}
	}
	t.Logf("%d accepted, %d refused on submit, %d appended unchecked", accepted, refused, direct)
	if accepted < n/4 || refused < n/20 {
		t.Fatalf("the mix is lopsided: %d accepted, %d refused of %d", accepted, refused, n)
	}

	// Let the Service apply the unchecked leaves, then save and snapshot.
	before := map[provenance.ItemID]string{}
	for _, it := range items {
		if v, err := w.svc.Item(t.Context(), it); err == nil {
			b, _ := json.Marshal(v.History)
			before[it] = string(b)
		}
	}
	w.close()
	w.open()
	live := dumpIndex(t, w.store)
	if applied, err := w.store.Applied(t.Context()); err != nil || applied != w.size() {
		t.Fatalf("index applied %d of %d log positions (%v)", applied, w.size(), err)
	}
	for _, it := range items {
		v, err := w.svc.Item(t.Context(), it)
		if err != nil {
			if _, had := before[it]; had {
				t.Fatalf("item %s lost on restart: %v", it, err)
			}
			continue
		}
		if b, _ := json.Marshal(v.History); string(b) != before[it] {
			t.Fatalf("item %s differs after restart", it)
		}
	}
	w.svc.Close()
	if err := provenance.Rebuild(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
	rebuilt := dumpIndex(t, w.store)
	if live != rebuilt {
		t.Fatalf("rebuilt index differs from the live one:\nlive    %.600s\nrebuilt %.600s", live, rebuilt)
	}
	if refused, err := w.store.Refused(t.Context(), 0, w.size()); err != nil || len(refused) == 0 {
		t.Fatal("no unchecked leaf was refused on replay: the test proves less than it says")
	}
	// Reopen the service for the cleanup.
	var err error
	if w.svc, err = provenance.NewService(t.Context(), w.config()); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkSubmit measures signed events through the Service on the
// embedded log: 1,024 items at once, each a chain of handoff and receive
// between two couriers, signed ahead of time. Compare events/s with
// BenchmarkEd25519Verify's verifies/s from the same run. It runs on a log
// that commits at once (linger=0) and on one that lingers up to 2 ms for
// more appends under load, as provd's does.
//
// cpu% is over the CPUs the benchmark was given (-cpu).
//
// Each case also measures signature checks as BenchmarkEd25519Verify does,
// half a second just before and just after its timed part, and reports
// their mean as verifies/s and events/s as a share of it as %verifies:
// this machine's speed drifts by a fifth within minutes, so a ratio of two
// benchmarks run a minute apart says more about the drift than the code.
func BenchmarkSubmit(b *testing.B) {
	for _, linger := range []time.Duration{0, 2 * time.Millisecond} {
		b.Run("linger="+linger.String(), func(b *testing.B) { benchSubmit(b, linger) })
	}
}

func benchSubmit(b *testing.B, linger time.Duration) {
	bench := newSubmitBench(b, linger)
	bench.run(b, func(leaf []byte) error {
		_, err := bench.w.svc.Submit(b.Context(), leaf)
		return err
	})
}

// BenchmarkSubmitFloor measures what BenchmarkSubmit's linger=2ms case
// would reach if the Service did nothing but check each event's signature
// as BenchmarkEd25519Verify does (note.Open, which parses the note too),
// append it to the same embedded log durably, and format its receipt's
// proof: no custody rules, no index, no applier. The same 1,024 items,
// events and reports as BenchmarkSubmit. Its verify case leaves out the
// log as well: what the goroutines themselves cost.
//
// Its batched case appends as a Service that gathered its submissions
// would: one goroutine takes every checked event waiting and appends them
// in one AppendProved call, so that a commit costs one queue entry, one
// wait and one wakeup, not one an event. Its wait case appends nothing:
// each event waits for the next tick of a 3 ms clock, as if for a commit
// that cost no CPU, and its receipt is formatted from one proof taken
// before the timed part: what it makes beyond the append case is what the
// log's work, not its latency, costs.
//
// It bounds what cutting the domain's costs can give: the log's share of
// an event is what BenchmarkSubmit's %verifies can never get back.
func BenchmarkSubmitFloor(b *testing.B) {
	for _, name := range []string{"verify", "verify+wait+receipt", "verify+append+receipt", "verify+batched-append+receipt"} {
		b.Run(name, func(b *testing.B) {
			bench := newSubmitBench(b, 2*time.Millisecond)
			var vs []note.Verifier
			for _, id := range []string{"acme", "courier-a", "courier-b"} {
				v, err := note.NewVerifier(bench.w.key(id).vkey)
				if err != nil {
					b.Fatal(err)
				}
				vs = append(vs, v)
			}
			verifiers := note.VerifierList(vs...)
			var appendOne func(leaf []byte) (merkle.Proved, error)
			switch name {
			case "verify+append+receipt":
				appendOne = func(leaf []byte) (merkle.Proved, error) {
					p, err := bench.w.log.AppendProved(b.Context(), [][]byte{leaf}, []merkle.Hash{merkle.LeafHash(leaf)})
					if err != nil {
						return merkle.Proved{}, err
					}
					return p[0], nil
				}
			case "verify+batched-append+receipt":
				appendOne = batchAppends(b, bench.w.log)
			case "verify+wait+receipt":
				cp, err := bench.w.log.Checkpoint(b.Context())
				if err != nil {
					b.Fatal(err)
				}
				proof, err := bench.w.log.InclusionProof(b.Context(), 0, cp.Size)
				if err != nil {
					b.Fatal(err)
				}
				wait := ticks(b, 3*time.Millisecond)
				appendOne = func([]byte) (merkle.Proved, error) {
					wait()
					return merkle.Proved{Index: 0, Proof: proof, Checkpoint: cp}, nil
				}
			}
			bench.run(b, func(leaf []byte) error {
				if _, err := note.Open(leaf, verifiers); err != nil {
					return err
				}
				if appendOne == nil {
					return nil
				}
				p, err := appendOne(leaf)
				if err != nil {
					return err
				}
				if merkle.FormatProof(merkle.Proof{Index: p.Index, Hashes: p.Proof, Checkpoint: p.Checkpoint.Note}) == nil {
					return errors.New("no receipt")
				}
				return nil
			})
		})
	}
}

// ticks returns a function that waits for the next tick of a clock
// ticking every d while the benchmark runs.
func ticks(b *testing.B, d time.Duration) (wait func()) {
	var mu sync.Mutex
	next := make(chan struct{})
	stop := make(chan struct{})
	b.Cleanup(func() { close(stop) })
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			mu.Lock()
			close(next)
			next = make(chan struct{})
			mu.Unlock()
		}
	}()
	return func() {
		mu.Lock()
		c := next
		mu.Unlock()
		<-c
	}
}

// batchAppends returns a function that appends a leaf to log and returns
// it proved, gathering the leaves of concurrent callers: one goroutine, as
// long as the benchmark runs, appends every leaf waiting in one call.
func batchAppends(b *testing.B, log merkle.ProvingLog) func(leaf []byte) (merkle.Proved, error) {
	type result struct {
		p   merkle.Proved
		err error
	}
	type request struct {
		leaf []byte
		done chan result
	}
	requests := make(chan request, 4096)
	stopped := make(chan struct{})
	b.Cleanup(func() {
		close(requests)
		<-stopped
	})
	go func() {
		defer close(stopped)
		var batch []request
		var leaves [][]byte
		var hashes []merkle.Hash
		for r := range requests {
			batch = append(batch[:0], r)
		gather:
			for {
				select {
				case r, ok := <-requests:
					if !ok {
						break gather
					}
					batch = append(batch, r)
				default:
					break gather
				}
			}
			leaves, hashes = leaves[:0], hashes[:0]
			for _, r := range batch {
				leaves = append(leaves, r.leaf)
				hashes = append(hashes, merkle.LeafHash(r.leaf))
			}
			ps, err := log.AppendProved(context.Background(), leaves, hashes)
			for i, r := range batch {
				if err != nil {
					r.done <- result{err: err}
				} else {
					r.done <- result{p: ps[i]}
				}
			}
		}
	}()
	return func(leaf []byte) (merkle.Proved, error) {
		done := make(chan result, 1)
		requests <- request{leaf, done}
		r := <-done
		return r.p, r.err
	}
}

// A submitBench is BenchmarkSubmit's world: three enrolled actors and
// 1,024 registered items, each with a chain of handoffs and receives
// between two couriers, signed ahead of time, long enough for b.N events
// in all.
type submitBench struct {
	w      *world
	cpus   int
	enroll []byte // a leaf for verifyRate
	chains [][][]byte
}

func newSubmitBench(b *testing.B, linger time.Duration) *submitBench {
	cpus := runtime.GOMAXPROCS(0)
	w := newWorldLinger(b, linger)
	// Save as provd does, not as often as the other tests do.
	w.svc.Close()
	var err error
	cfg := w.config()
	cfg.SaveEvery = 0
	if w.svc, err = provenance.NewService(b.Context(), cfg); err != nil {
		b.Fatal(err)
	}
	enroll := w.enroll("acme", provenance.RoleManufacturer)
	w.ok(enroll)
	w.ok(w.enroll("courier-a", provenance.RoleCourier))
	w.ok(w.enroll("courier-b", provenance.RoleCourier))
	const items = 1024
	perItem := b.N/items + 1
	chains := make([][][]byte, items)
	for i := range chains {
		item := w.newItem()
		reg := w.register("acme", item)
		w.ok(reg)
		prev, holder := merkle.LeafHash(reg), "acme"
		for j := range perItem {
			to := "courier-a"
			if j%4 >= 2 {
				to = "courier-b"
			}
			var e provenance.Event
			if j%2 == 0 {
				e = provenance.Event{Kind: provenance.KindHandoff, Actor: holder, Item: item, Prev: prev, Handoff: &provenance.Handoff{To: to}}
			} else {
				e = provenance.Event{Kind: provenance.KindReceive, Actor: to, Item: item, Prev: prev, Receive: &provenance.Receive{By: to}}
				holder = to
			}
			leaf := w.sign(e, w.key(e.Actor))
			chains[i] = append(chains[i], leaf)
			prev = merkle.LeafHash(leaf)
		}
	}
	return &submitBench{w: w, cpus: cpus, enroll: enroll, chains: chains}
}

// run times b.N events, one goroutine an item calling submit for each of
// its events in order, and reports events/s, the CPUs used, and
// verifies/s measured around the timed part with events/s as a share of
// it.
func (sb *submitBench) run(b *testing.B, submit func(leaf []byte) error) {
	verifiesBefore := verifyRate(b, sb.enroll, sb.w.op.vkey, sb.cpus, time.Second/2)
	b.ResetTimer()
	start := time.Now()
	cpu0 := processCPU(b)
	var wg sync.WaitGroup
	per := b.N / len(sb.chains)
	for i := range sb.chains {
		n := per
		if i < b.N%len(sb.chains) {
			n++
		}
		wg.Go(func() {
			for _, leaf := range sb.chains[i][:n] {
				if err := submit(leaf); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	verifies := (verifiesBefore + verifyRate(b, sb.enroll, sb.w.op.vkey, sb.cpus, time.Second/2)) / 2
	events := float64(b.N) / elapsed.Seconds()
	// The share of the CPUs the process used: short of 100%, the events
	// waited for something besides the CPUs (the disk, the committer).
	b.ReportMetric(float64(cpu)/float64(elapsed)/float64(sb.cpus)*100, "cpu%")
	b.ReportMetric(events, "events/s")
	b.ReportMetric(verifies, "verifies/s")
	b.ReportMetric(events/verifies*100, "%verifies")
}

// verifyRate measures what BenchmarkEd25519Verify does, inside another
// benchmark: verifications a second of a signed note, on cpus goroutines
// for about d.
//
// It collects garbage first, so that no collection the timed part started
// runs beside it: the collector's workers take a quarter of the CPUs, and
// a rate measured beside them would be low and flatter the ratio to it.
func verifyRate(tb testing.TB, leaf []byte, vkey string, cpus int, d time.Duration) float64 {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	vs := note.VerifierList(v)
	runtime.GC()
	var n atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range cpus {
		wg.Go(func() {
			for time.Since(start) < d {
				if _, err := note.Open(leaf, vs); err != nil {
					tb.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}

// TestServiceCatchesUpBeforeRefusing gives a second Service (a replica with
// its own index) the same log, polling it only hourly: an event that
// depends on one the first Service just appended is checked against the
// whole log, not refused for the replica's lag.
func TestServiceCatchesUpBeforeRefusing(t *testing.T) {
	w := newWorld(t)
	store2 := replicaStore(t)
	cfg := w.config()
	cfg.Store = store2
	replica, err := provenance.NewService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()

	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))
	item := w.newItem()
	w.ok(w.register("acme", item))
	if _, err := replica.Submit(t.Context(), w.handoff("acme", item, provenance.Handoff{To: "swift"})); err != nil {
		t.Fatalf("the replica refused an event the log allows: %v", err)
	}
	// What the whole log refuses is still refused.
	if _, err := replica.Submit(t.Context(), w.register("acme", item)); !errors.Is(err, provenance.ErrAlreadyRegistered) {
		t.Fatalf("double registration through the replica: %v", err)
	}
}

// TestServiceRechecksWhenThePollerCaughtUp has a replica's poller apply
// what another Service appended between the replica's first check of an
// event and its catch-up: the event is checked again, not refused on the
// state the first check saw. The log holds back growth from the poller
// until Submit's catch-up reads the checkpoint, then lets the poller apply
// everything before answering.
func TestServiceRechecksWhenThePollerCaughtUp(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	w.ok(w.enroll("swift", provenance.RoleCourier))

	store2 := replicaStore(t)
	gate := &pollGate{Log: w.log}
	cfg := w.config()
	cfg.Log, cfg.Store, cfg.PollInterval = gate, store2, time.Millisecond
	replica, err := provenance.NewService(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	gate.hold(t, func(ctx context.Context, cp merkle.Checkpoint) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := replica.WaitApplied(ctx, cp.Size-1); err != nil {
			t.Errorf("the replica's poller did not apply the log up to %d: %v", cp.Size, err)
		}
	})

	item := w.newItem()
	w.ok(w.register("acme", item))
	ctx := context.WithValue(t.Context(), submitting{}, true)
	if _, err := replica.Submit(ctx, w.handoff("acme", item, provenance.Handoff{To: "swift"})); err != nil {
		t.Fatalf("the replica refused an event the log allows: %v", err)
	}
	if !gate.released() {
		t.Fatal("Submit did not read the checkpoint before accepting: the test did not exercise the race")
	}
}

// submitting marks the context of the Submit call a pollGate waits for.
type submitting struct{}

// A pollGate is a Log whose checkpoint stays where it was when held, for
// every caller but a Submit with a submitting context: that one releases
// it, and before it gets the checkpoint, the release function runs.
type pollGate struct {
	merkle.Log

	mu      sync.Mutex
	held    *merkle.Checkpoint
	release func(context.Context, merkle.Checkpoint)
	done    bool
}

func (g *pollGate) hold(t *testing.T, release func(context.Context, merkle.Checkpoint)) {
	t.Helper()
	cp, err := g.Log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held, g.release = &cp, release
}

func (g *pollGate) released() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.done
}

func (g *pollGate) Checkpoint(ctx context.Context) (merkle.Checkpoint, error) {
	g.mu.Lock()
	held, release := g.held, g.release
	if held != nil && ctx.Value(submitting{}) != nil {
		g.held, g.release, g.done = nil, nil, true
	}
	g.mu.Unlock()
	switch {
	case held == nil:
		return g.Log.Checkpoint(ctx)
	case ctx.Value(submitting{}) == nil:
		return *held, nil
	}
	cp, err := g.Log.Checkpoint(ctx)
	if err != nil {
		return cp, err
	}
	release(ctx, cp)
	return cp, nil
}

// replicaStore opens an index of its own in a fresh bbolt file, for a
// second Service (a replica) on a world's log.
func replicaStore(t *testing.T) *boltstore.Store {
	t.Helper()
	db, err := boltlog.OpenDB(filepath.Join(t.TempDir(), "replica.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// processCPU returns the CPU time the process has used, user and system.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
