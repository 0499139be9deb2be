// Package boltstore keeps the provenance index on bbolt, in the same file as
// the embedded log (merkle/boltlog) or in a file of its own.
//
// Everything is kept under one top-level bucket, "provenance-index", as JSON
// records: actors by id, each actor's latest events, items by Digital Link path, used claims by hash,
// refused log positions by index, and the applied position. A Save is one
// bbolt transaction, so the saved index is always the replay of some prefix
// of the log; the Service replays the rest on open.
package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/provtrail/provtrail/provenance"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

const (
	rootBucket    = "provenance-index"
	metaBucket    = "meta"
	actorBucket   = "actors"
	actorEvBucket = "actor-events"
	itemBucket    = "items"
	claimBucket   = "claims"
	refusedBucket = "refused"
	appliedKey    = "applied"
)

var _ provenance.Store = (*Store)(nil)

// A Store is the provenance index in a bbolt database.
type Store struct {
	db *bbolt.DB
}

// Open returns the index kept in db, creating its buckets on first use. The
// caller owns db and closes it.
func Open(db *bbolt.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("boltstore: no database")
	}
	if err := db.Update(create); err != nil {
		return nil, fmt.Errorf("boltstore: create buckets: %w", err)
	}
	return &Store{db: db}, nil
}

func create(tx *bbolt.Tx) error {
	root, err := tx.CreateBucketIfNotExists([]byte(rootBucket))
	if err != nil {
		return err
	}
	for _, name := range []string{metaBucket, actorBucket, actorEvBucket, itemBucket, claimBucket, refusedBucket} {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return err
		}
	}
	return nil
}

func bucket(tx *bbolt.Tx, name string) *bbolt.Bucket {
	return tx.Bucket([]byte(rootBucket)).Bucket([]byte(name))
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func applied(tx *bbolt.Tx) uint64 {
	v := bucket(tx, metaBucket).Get([]byte(appliedKey))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Load implements provenance.Store.
func (s *Store) Load(ctx context.Context) (provenance.Snapshot, error) {
	var snap provenance.Snapshot
	if err := ctx.Err(); err != nil {
		return snap, err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		snap.Applied = applied(tx)
		if err := bucket(tx, actorBucket).ForEach(func(k, v []byte) error {
			var a provenance.ActorState
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("actor %q: %w", k, err)
			}
			snap.Actors = append(snap.Actors, a)
			return nil
		}); err != nil {
			return err
		}
		if err := bucket(tx, actorEvBucket).ForEach(func(k, v []byte) error {
			a := provenance.ActorEvents{ID: string(k)}
			if err := json.Unmarshal(v, &a.Events); err != nil {
				return fmt.Errorf("events of actor %q: %w", k, err)
			}
			snap.ActorEvents = append(snap.ActorEvents, a)
			return nil
		}); err != nil {
			return err
		}
		if err := bucket(tx, itemBucket).ForEach(func(k, v []byte) error {
			var it provenance.ItemRecord
			if err := json.Unmarshal(v, &it); err != nil {
				return fmt.Errorf("item %q: %w", k, err)
			}
			snap.Items = append(snap.Items, it)
			return nil
		}); err != nil {
			return err
		}
		if err := bucket(tx, claimBucket).ForEach(func(k, v []byte) error {
			var c provenance.ClaimRecord
			if len(k) != len(c.Claim) {
				return fmt.Errorf("claim key %x is corrupt", k)
			}
			copy(c.Claim[:], k)
			id, err := provenance.ParseItemID(string(v))
			if err != nil {
				return fmt.Errorf("claim %x: %w", k, err)
			}
			c.Item = id
			snap.Claims = append(snap.Claims, c)
			return nil
		}); err != nil {
			return err
		}
		return bucket(tx, refusedBucket).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return fmt.Errorf("refusal key %x is corrupt", k)
			}
			snap.Refused = append(snap.Refused, provenance.Refusal{Index: binary.BigEndian.Uint64(k), Reason: string(v)})
			return nil
		})
	})
	if err != nil {
		return provenance.Snapshot{}, fmt.Errorf("load index: %w", err)
	}
	return snap, nil
}

// Save implements provenance.Store.
func (s *Store) Save(ctx context.Context, d provenance.Delta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if at := applied(tx); at != d.From {
			return fmt.Errorf("%w: delta [%d, %d), index at %d", provenance.ErrStoreGap, d.From, d.To, at)
		}
		for _, a := range d.Actors {
			v, err := json.Marshal(a)
			if err != nil {
				return err
			}
			if err := bucket(tx, actorBucket).Put([]byte(a.ID), v); err != nil {
				return err
			}
		}
		for _, a := range d.ActorEvents {
			v, err := json.Marshal(a.Events)
			if err != nil {
				return err
			}
			if err := bucket(tx, actorEvBucket).Put([]byte(a.ID), v); err != nil {
				return err
			}
		}
		for _, it := range d.Items {
			v, err := json.Marshal(it)
			if err != nil {
				return err
			}
			if err := bucket(tx, itemBucket).Put([]byte(it.State.ID.String()), v); err != nil {
				return err
			}
		}
		for _, c := range d.Claims {
			if err := bucket(tx, claimBucket).Put(c.Claim[:], []byte(c.Item.String())); err != nil {
				return err
			}
		}
		for _, r := range d.Refused {
			if err := bucket(tx, refusedBucket).Put(u64(r.Index), []byte(r.Reason)); err != nil {
				return err
			}
		}
		return bucket(tx, metaBucket).Put([]byte(appliedKey), u64(d.To))
	})
	if err != nil {
		return fmt.Errorf("save index [%d, %d): %w", d.From, d.To, err)
	}
	return nil
}

// Reset implements provenance.Store.
func (s *Store) Reset(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if err := tx.DeleteBucket([]byte(rootBucket)); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		return create(tx)
	})
}
