package provenance

import (
	"context"
	"crypto/sha256"
	"errors"
)

// A Store keeps the index derived from the log: the records of actors,
// items and used claims as the log positions [0, Applied) left them. The
// Service reads it through, record by record, and saves what applying
// more of the log changed in batches (Save), so that neither its memory
// nor its restart time grows with the index. A Store never decides
// anything on its own, and everything in it can be rebuilt by replaying
// the log.
//
// Reads of records not in the index return an error matching ErrNotFound.
// Reads may run concurrently with each other and with Save; a read sees
// the index before or after a Save, never part of one.
//
// Implementations: provenance/boltstore (in the data directory's bbolt
// file) and provenance/sqlstore (in MySQL or MariaDB, shared by
// replicas). The conformance suite is provenance/storetest.
type Store interface {
	// Applied returns the log position the saved index has applied up to:
	// 0 for an empty index.
	Applied(ctx context.Context) (uint64, error)
	// Actor returns an enrolled actor's record.
	Actor(ctx context.Context, id string) (ActorRecord, error)
	// Item returns an item's record.
	Item(ctx context.Context, id ItemID) (ItemRecord, error)
	// Claim returns the record of a used claim.
	Claim(ctx context.Context, claim [sha256.Size]byte) (ClaimRecord, error)
	// Refused returns the refusals at log positions [from, to), in order.
	Refused(ctx context.Context, from, to uint64) ([]Refusal, error)
	// Save records, atomically, what applying the log positions
	// [d.From, d.To) changed. It returns an error matching ErrStoreGap, and
	// saves nothing, unless d.From is the Applied position.
	Save(ctx context.Context, d Delta) error
	// Reset deletes the whole index, for a rebuild from the log.
	Reset(ctx context.Context) error
}

// ErrStoreGap is returned by Store.Save for a delta that does not start
// where the saved index ends.
var ErrStoreGap = errors.New("index delta does not start where the index ends")

// An ItemRecord is an item's state and the log positions of its accepted
// events, in log order.
type ItemRecord struct {
	State  ItemState
	Events []uint64
}

// An ActorRecord is an enrolled actor's state and the log positions of its
// latest accepted events (at most MaxActorEvents): those it signed, and
// its enrollments and revocations, in log order.
type ActorRecord struct {
	State  ActorState
	Events []uint64
}

// A ClaimRecord is a claim (salted hash of a claim code) that a buyer used
// to receive Item, at log position Index.
type ClaimRecord struct {
	Claim [sha256.Size]byte
	Item  ItemID
	Index uint64
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
// records of every actor and item that changed, the claims used and the
// leaves refused.
type Delta struct {
	From, To uint64
	Actors   []ActorRecord
	Items    []ItemRecord
	Claims   []ClaimRecord
	Refused  []Refusal
}
