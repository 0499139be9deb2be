package provenance

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/provtrail/provtrail/merkle"
	"golang.org/x/mod/sumdb/note"
)

// BundleFormat is the format field of every proof bundle.
const BundleFormat = "provtrail-bundle/v1"

// MaxBundleSize is the largest bundle VerifyBundle reads, in bytes.
const MaxBundleSize = 16 << 20

// Trust is what a verifier pins, out of band: the log's origin and
// verifier key, and the operator's verifier key. Keys are never taken from
// a bundle.
type Trust struct {
	Origin      string
	LogKey      string // the log's signed-note verifier key (checkpoints)
	OperatorKey string // the operator's signed-note verifier key (enrollments, revocations, rulings)
	// Policy, if set, is a C2SP tlog-policy the checkpoint must meet too:
	// the witness cosignatures its quorum requires.
	Policy *merkle.Policy
}

// A BundleEntry is one log entry for a bundle: its index, its leaf and
// its inclusion proof in the tree of the bundle's checkpoint.
type BundleEntry struct {
	Index uint64
	Leaf  []byte
	Proof []merkle.Hash
}

// A BundleError says why a proof bundle does not verify. It matches
// ErrBadBundle and unwraps to the cause (e.g. ErrMalformedBundle,
// merkle.ErrBadCheckpoint, merkle.ErrBadProof, or a *RuleError and its
// sentinel).
type BundleError struct {
	Entry int    // the entry at fault, counting from 0; -1 for the bundle as a whole
	Index uint64 // its log index, if Entry >= 0
	Err   error
}

func (e *BundleError) Error() string {
	if e.Entry < 0 {
		return fmt.Sprintf("bad proof bundle: %v", e.Err)
	}
	return fmt.Sprintf("bad proof bundle: entry %d (log index %d): %v", e.Entry, e.Index, e.Err)
}

// Is reports whether target is ErrBadBundle.
func (e *BundleError) Is(target error) bool { return target == ErrBadBundle }

func (e *BundleError) Unwrap() error { return e.Err }

// History is the verified custody history of one item, as proved by a
// bundle.
type History struct {
	Item       ItemID
	State      ItemState      // the item after its last event in the bundle
	Events     []HistoryEvent // the item's events, in log order
	Actors     []ActorState   // the actors the events rely on, as of the checkpoint
	Checkpoint merkle.Checkpoint
}

// A HistoryEvent is one verified event of an item.
type HistoryEvent struct {
	Applied
	ActorName string // display name of the signer when it signed ("" for operator and buyer)
}

// BundleActors returns the ids of the actors that the events of one item
// rely on: every signer and every actor a handoff names, except the
// operator (whose key is pinned) and buyers (whose keys are in the events).
// A bundle carries every enrollment and revocation of these actors up to
// its checkpoint: their ActorState.Keys give the log indices (From is an
// enrollment, To a revocation).
func BundleActors(operatorID string, events []Event) []string {
	var ids []string
	add := func(id string) {
		if id != "" && id != operatorID && id != BuyerID && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, e := range events {
		add(e.Actor)
		if e.Handoff != nil {
			add(e.Handoff.To)
		}
	}
	slices.Sort(ids)
	return ids
}

// BuildBundle writes the proof bundle of item: the keys it is made for,
// the signed checkpoint, and the entries (every event of the item and every
// enrollment and revocation of BundleActors up to the checkpoint), each
// with its inclusion proof in the checkpoint's tree. Entries may come in
// any order. The bundle is verified before it is returned, so a bundle that
// BuildBundle returns verifies with VerifyBundle(b, keys).
func BuildBundle(keys Trust, item ItemID, checkpoint []byte, entries []BundleEntry) ([]byte, error) {
	b := bundleJSON{
		Format: BundleFormat, Origin: keys.Origin, LogKey: keys.LogKey, OperatorKey: keys.OperatorKey,
		Item: item.String(), Checkpoint: string(checkpoint),
	}
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b BundleEntry) int {
		switch {
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	for _, e := range sorted {
		p := merkle.FormatProof(merkle.Proof{Index: e.Index, Hashes: e.Proof, Checkpoint: checkpoint})
		b.Entries = append(b.Entries, entryJSON{Index: e.Index, Leaf: e.Leaf, Proof: string(p)})
	}
	out, err := encodeBundle(b)
	if err != nil {
		return nil, fmt.Errorf("build bundle for %s: %w", item, err)
	}
	if _, err := VerifyBundle(out, keys); err != nil {
		return nil, fmt.Errorf("build bundle for %s: %w", item, err)
	}
	return out, nil
}

// VerifyBundle checks a proof bundle against pinned keys, with no network
// and no trust in whoever made it, and returns the history it proves.
//
// It checks that the bundle is in its one canonical encoding; that it was
// made for the pinned origin and keys; the checkpoint's signature by the
// log key; that every entry, in strictly increasing log order, carries a
// tlog-proof whose checkpoint is the bundle's and whose inclusion proof
// leads to its root; that every entry is an event of the item or an
// enrollment or revocation of an actor the item's events rely on; and it
// replays the entries through State.Apply, which checks every signature
// against the key valid at that log position (the operator's pinned key
// for enrollments, revocations and rulings), the prev chain from the
// register event to the last, the order of event times (none before the
// item's previous event or the signing key's enrollment), and the custody
// rules. It does not check whether a time was in the future when the event
// was submitted: that depends on the clock then, which the server checked.
//
// See docs/bundle.md for the format and what a bundle does not prove.
func VerifyBundle(bundle []byte, trust Trust) (History, error) {
	fail := func(format string, args ...any) (History, error) {
		return History{}, &BundleError{Entry: -1, Err: fmt.Errorf(format, args...)}
	}
	if len(bundle) > MaxBundleSize {
		return fail("%d bytes, more than %d", len(bundle), MaxBundleSize)
	}
	b, err := decodeBundle(bundle)
	if err != nil {
		return fail("%w", err)
	}
	if b.Format != BundleFormat {
		return fail("format is %.40q, want %q", b.Format, BundleFormat)
	}
	switch {
	case b.Origin != trust.Origin:
		return fail("made for log %.80q, not the pinned %q", b.Origin, trust.Origin)
	case b.LogKey != trust.LogKey:
		return fail("made for log key %.120q, not the pinned one", b.LogKey)
	case b.OperatorKey != trust.OperatorKey:
		return fail("made for operator key %.120q, not the pinned one", b.OperatorKey)
	}
	logKey, err := note.NewVerifier(trust.LogKey)
	if err != nil {
		return fail("pinned log key: %v", err)
	}
	st, err := NewState(trust.OperatorKey)
	if err != nil {
		return fail("pinned %v", err)
	}
	cp, err := merkle.ParseCheckpoint([]byte(b.Checkpoint), trust.Origin, logKey)
	if err != nil {
		return fail("%w", err)
	}
	if trust.Policy != nil {
		if _, err := trust.Policy.Verify([]byte(b.Checkpoint)); err != nil {
			return fail("%w", err)
		}
	}
	item, err := ParseItemID(b.Item)
	if err != nil {
		return fail("%w", err)
	}
	if len(b.Entries) == 0 {
		return fail("no entries")
	}

	// First pass: proofs, order, and what each entry is. The entries are
	// independent here: parse and prove them on every CPU at once, then
	// report the first entry at fault, as a sequential pass would.
	events := make([]Event, len(b.Entries))
	checked := make([]*Checked, len(b.Entries))
	errs := make([]error, len(b.Entries))
	parallel(len(b.Entries), func(i int) {
		checked[i], errs[i] = checkEntry(b.Entries[i], cp, item)
	})
	var itemEvents []Event
	for i, en := range b.Entries {
		if i > 0 && en.Index <= b.Entries[i-1].Index {
			errs[i] = fmt.Errorf("index not after the previous entry's %d", b.Entries[i-1].Index)
		}
		if errs[i] != nil {
			return History{}, &BundleError{Entry: i, Index: en.Index, Err: errs[i]}
		}
		e := checked[i].Event()
		if e.Kind.IsItemEvent() {
			itemEvents = append(itemEvents, e)
		}
		events[i] = e
	}
	if len(itemEvents) == 0 || itemEvents[0].Kind != KindRegister {
		return fail("no register event of %s", item)
	}
	opID, _ := st.Operator()
	relied := BundleActors(opID, itemEvents)
	for i, e := range events {
		var subject string
		switch e.Kind {
		case KindEnroll:
			subject = e.Enroll.ID
		case KindRevoke:
			subject = e.Revoke.ID
		default:
			continue
		}
		if _, found := slices.BinarySearch(relied, subject); !found {
			return History{}, &BundleError{Entry: i, Index: b.Entries[i].Index,
				Err: fmt.Errorf("%s of %q, whom no event of %s relies on", e.Kind, subject, item)}
		}
	}

	// Verify signatures on every CPU at once, each with the key the replay
	// will most likely require; the replay verifies again only where it
	// requires another key.
	preverify(trust.OperatorKey, events, checked)

	// Second pass: replay through the custody rules.
	h := History{Item: item, Checkpoint: cp}
	for i, en := range b.Entries {
		a, err := st.ApplyChecked(en.Index, checked[i])
		if err != nil {
			return History{}, &BundleError{Entry: i, Index: en.Index, Err: err}
		}
		if a.Event.Kind.IsItemEvent() {
			he := HistoryEvent{Applied: a}
			if as, ok := st.Actor(a.Event.Actor); ok {
				he.ActorName = as.Name
			}
			h.Events = append(h.Events, he)
		}
	}
	h.State, _ = st.Item(item)
	for _, id := range relied {
		if as, ok := st.Actor(id); ok {
			h.Actors = append(h.Actors, as)
		}
	}
	return h, nil
}

// preverify verifies the signature of each checked entry in parallel with
// the key the entry will need if the bundle is sound: the operator's for
// operator events, the buyer key inside a buyer's receive, and otherwise
// the key of the actor's latest enrollment earlier in the bundle. It
// records the key in the Checked of each signature that verifies;
// ApplyChecked skips its own verification only when it requires that very
// key, so a wrong guess costs time, never soundness.
func preverify(operatorKey string, events []Event, checked []*Checked) {
	keys := make([]string, len(events))
	enrolled := map[string]string{}
	for i, e := range events {
		switch {
		case e.Kind == KindEnroll || e.Kind == KindRevoke || e.Kind == KindRuling:
			keys[i] = operatorKey
			if e.Enroll != nil {
				enrolled[e.Enroll.ID] = e.Enroll.Key
			}
		case e.Actor == BuyerID:
			if e.Receive != nil {
				keys[i] = e.Receive.BuyerKey
			}
		default:
			keys[i] = enrolled[e.Actor]
		}
	}
	parallel(len(events), func(i int) {
		if keys[i] == "" {
			return
		}
		c := checked[i]
		v, reason := parseKey(keys[i], c.event.Actor)
		if reason == "" && verifySig(c.leaf, c.event.Actor, &c.sig, v) == nil {
			c.vkey = keys[i]
		}
	})
}

// checkEntry checks one bundle entry on its own: its tlog-proof is for its
// index, against the bundle's checkpoint, and leads to its root; its leaf
// is an event (parsed, not yet verified); an item event is of item.
func checkEntry(en entryJSON, cp merkle.Checkpoint, item ItemID) (*Checked, error) {
	p, err := merkle.ParseProof([]byte(en.Proof))
	if err != nil {
		return nil, err
	}
	if p.Index != en.Index {
		return nil, fmt.Errorf("proof is for index %d", p.Index)
	}
	if !bytes.Equal(p.Checkpoint, cp.Note) {
		return nil, errors.New("proof is against another checkpoint")
	}
	if err := merkle.VerifyInclusion(merkle.LeafHash(en.Leaf), en.Index, cp.Size, cp.Root, p.Hashes); err != nil {
		return nil, err
	}
	c, err := NewChecked(en.Leaf)
	if err != nil {
		return nil, err
	}
	if e := c.Event(); e.Kind.IsItemEvent() && e.Item != item {
		return nil, fmt.Errorf("an event of %s, not of %s", e.Item, item)
	}
	return c, nil
}

// parallel calls f(0), ..., f(n-1), on as many goroutines as CPUs, and
// returns when all have returned.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}
