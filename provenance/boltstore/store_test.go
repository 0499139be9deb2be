package boltstore_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/provenance/storetest"
	"go.etcd.io/bbolt"
)

func tempDB(t *testing.T) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "index.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) provenance.Store {
		s, err := boltstore.Open(tempDB(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestOtherFormatDeleted checks that an index of another layout is deleted
// on open, so that the Service rebuilds it from the log rather than read
// records it does not understand.
func TestOtherFormatDeleted(t *testing.T) {
	db := tempDB(t)
	err := db.Update(func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucket([]byte("provenance-index"))
		if err != nil {
			return err
		}
		meta, err := root.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return meta.Put([]byte("applied"), []byte{0, 0, 0, 0, 0, 0, 0, 42})
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if at, err := s.Applied(t.Context()); err != nil || at != 0 {
		t.Fatalf("an index of an older layout applied %d (%v), want it deleted", at, err)
	}
	if err := s.Save(t.Context(), provenance.Delta{From: 0, To: 1}); err != nil {
		t.Fatal(err)
	}
	s, err = boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	if at, _ := s.Applied(t.Context()); at != 1 {
		t.Fatalf("reopening an index of this layout deleted it (applied %d)", at)
	}
}
