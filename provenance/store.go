package provenance

import (
	"context"
	"crypto/sha256"
	"errors"
)

// A Store keeps the index derived from the log, so that a restart replays
// only the log positions it has not seen. The Service holds the index in
// memory and saves what changed in batches; a Store never decides anything
// on its own, and everything in it can be rebuilt by replaying the log.
//
// Implementations: provenance/boltstore.
type Store interface {
	// Load returns the index as last saved: the empty snapshot (Applied 0)
	// if nothing was ever saved.
	Load(ctx context.Context) (Snapshot, error)
	// Save records, atomically, what applying the log positions
	// [d.From, d.To) changed. It returns ErrStoreGap, and saves nothing,
	// unless d.From is the Applied position of the last save.
	Save(ctx context.Context, d Delta) error
	// Reset deletes the whole index, for a rebuild from the log.
	Reset(ctx context.Context) error
}

// ErrStoreGap is returned by Store.Save for a delta that does not start
// where the saved index ends.
var ErrStoreGap = errors.New("index delta does not start where the index ends")

// A Snapshot is the index after replaying the log positions [0, Applied).
type Snapshot struct {
	Applied     uint64
	Actors      []ActorState
	ActorEvents []ActorEvents
	Items       []ItemRecord
	Claims      []ClaimRecord
	Refused     []Refusal
}

// An ItemRecord is an item's state and the log positions of its accepted
// events, in log order.
type ItemRecord struct {
	State  ItemState
	Events []uint64
}

// ActorEvents are the log positions of an enrolled actor's latest
// accepted events (at most MaxActorEvents): those it signed, and its
// enrollments and revocations, in log order.
type ActorEvents struct {
	ID     string
	Events []uint64
}

// A ClaimRecord is a claim (salted hash of a claim code) that a buyer used
// to receive Item.
type ClaimRecord struct {
	Claim [sha256.Size]byte
	Item  ItemID
}

// A Refusal is a leaf in the log that the custody rules refused when it
// was replayed (two replicas accepted conflicting events, or a key was
// revoked between the check and the append). Every replica refuses it
// alike.
type Refusal struct {
	Index  uint64
	Reason string
}

// A Delta is what applying the log positions [From, To) changed: the new
// versions of every actor and item that changed, the claims used and the
// leaves refused.
type Delta struct {
	From, To    uint64
	Actors      []ActorState
	ActorEvents []ActorEvents // the new list of each actor whose list changed
	Items       []ItemRecord
	Claims      []ClaimRecord
	Refused     []Refusal
}
