// Package boltstore keeps the provenance index on bbolt, in the same file as
// the embedded log (merkle/boltlog) or in a file of its own.
//
// Everything is kept under one top-level bucket, "provenance-index", as JSON
// records: actors by id (state and latest events), items by Digital Link
// path (state and events), used claims by hash, refused log positions by
// index, and in "meta" the applied position and the layout's format. A Save
// is one bbolt transaction, so the saved index is always the replay of
// some prefix of the log; the Service replays the rest on open. The
// Service reads it record by record: nothing is loaded whole.
//
// An index in another format (an older layout) is deleted when the Store
// opens, so that the Service rebuilds it from the log.
package boltstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/provtrail/provtrail/provenance"
	"go.etcd.io/bbolt"
)

const (
	rootBucket    = "provenance-index"
	metaBucket    = "meta"
	actorBucket   = "actors"
	itemBucket    = "items"
	claimBucket   = "claims"
	refusedBucket = "refused"
	appliedKey    = "applied"
	formatKey     = "format"
	// format names the layout above; Open deletes an index in any other.
	format = "4"
)

var _ provenance.Store = (*Store)(nil)

// A Store is the provenance index in a bbolt database.
type Store struct {
	db *bbolt.DB
}

// Open returns the index kept in db, creating its buckets on first use,
// and deleting an index of another format. The caller owns db and closes
// it.
func Open(db *bbolt.DB) (*Store, error) {
	if db == nil {
		return nil, errors.New("boltstore: no database")
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		if root := tx.Bucket([]byte(rootBucket)); root != nil {
			meta := root.Bucket([]byte(metaBucket))
			if meta != nil && string(meta.Get([]byte(formatKey))) == format {
				return nil
			}
			if err := tx.DeleteBucket([]byte(rootBucket)); err != nil {
				return err
			}
		}
		return create(tx)
	})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open index: %w", err)
	}
	return &Store{db: db}, nil
}

func create(tx *bbolt.Tx) error {
	root, err := tx.CreateBucket([]byte(rootBucket))
	if err != nil {
		return err
	}
	for _, name := range []string{metaBucket, actorBucket, itemBucket, claimBucket, refusedBucket} {
		if _, err := root.CreateBucket([]byte(name)); err != nil {
			return err
		}
	}
	return root.Bucket([]byte(metaBucket)).Put([]byte(formatKey), []byte(format))
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

// Applied implements provenance.Store.
func (s *Store) Applied(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var at uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		at = applied(tx)
		return nil
	})
	return at, err
}

// get decodes the JSON record at key in bucket b into v, or returns an
// error matching provenance.ErrNotFound.
func (s *Store) get(ctx context.Context, b string, key []byte, what string, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		data := bucket(tx, b).Get(key)
		if data == nil {
			return fmt.Errorf("%w: %s is not in the index", provenance.ErrNotFound, what)
		}
		if err := json.Unmarshal(data, v); err != nil {
			return fmt.Errorf("%s in the index: %w", what, err)
		}
		return nil
	})
}

// Actor implements provenance.Store.
func (s *Store) Actor(ctx context.Context, id string) (provenance.ActorRecord, error) {
	var a provenance.ActorRecord
	err := s.get(ctx, actorBucket, []byte(id), fmt.Sprintf("actor %q", id), &a)
	return a, err
}

// Item implements provenance.Store.
func (s *Store) Item(ctx context.Context, id provenance.ItemID) (provenance.ItemRecord, error) {
	var it provenance.ItemRecord
	err := s.get(ctx, itemBucket, []byte(id.String()), "item "+id.String(), &it)
	return it, err
}

// Claim implements provenance.Store.
func (s *Store) Claim(ctx context.Context, claim [sha256.Size]byte) (provenance.ClaimRecord, error) {
	var c provenance.ClaimRecord
	err := s.get(ctx, claimBucket, claim[:], fmt.Sprintf("claim %x", claim[:4]), &c)
	return c, err
}

// Refused implements provenance.Store.
func (s *Store) Refused(ctx context.Context, from, to uint64) ([]provenance.Refusal, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []provenance.Refusal
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := bucket(tx, refusedBucket).Cursor()
		for k, v := c.Seek(u64(from)); k != nil; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("refusal key %x is corrupt", k)
			}
			i := binary.BigEndian.Uint64(k)
			if i >= to {
				break
			}
			out = append(out, provenance.Refusal{Index: i, Reason: string(v)})
		}
		return nil
	})
	return out, err
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
			if err := bucket(tx, actorBucket).Put([]byte(a.State.ID), v); err != nil {
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
			v, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := bucket(tx, claimBucket).Put(c.Claim[:], v); err != nil {
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
		if err := tx.DeleteBucket([]byte(rootBucket)); err != nil {
			return err
		}
		return create(tx)
	})
}

// Dump writes the whole index to w, one line a record in key order, each
// bucket after the other: two indexes of the same log prefix dump alike.
// It is for comparing an index with one rebuilt from the log.
func (s *Store) Dump(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{metaBucket, actorBucket, itemBucket, claimBucket, refusedBucket} {
			err := bucket(tx, name).ForEach(func(k, v []byte) error {
				_, err := fmt.Fprintf(w, "%s %x %s\n", name, k, v)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
