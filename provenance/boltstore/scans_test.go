package boltstore_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"go.etcd.io/bbolt"
)

func openDB(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func item(t *testing.T, serial string) provenance.ItemID {
	t.Helper()
	id, err := provenance.NewItemID("9506000134352", serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestScansSurviveRestart counts concurrently, closes, reopens the file
// and counts on.
func TestScansSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "provtrail.db")
	a, b := item(t, "A1"), item(t, "B2")

	db := openDB(t, path)
	scans, err := boltstore.OpenScans(db, boltstore.ScansConfig{FlushInterval: time.Hour, Logger: nil})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, err := scans.Scan(t.Context(), a); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n, err := scans.Scan(t.Context(), b); err != nil || n != 1 {
		t.Fatalf("first scan of b: %d, %v", n, err)
	}
	if err := scans.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := scans.Scan(t.Context(), a); err == nil {
		t.Error("Scan after Close succeeded")
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	scans, err = boltstore.OpenScans(db, boltstore.ScansConfig{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer scans.Close()
	if n, err := scans.Scan(t.Context(), a); err != nil || n != 201 {
		t.Errorf("scan of a after restart: %d, %v; want 201", n, err)
	}
	if n, err := scans.Count(t.Context(), b); err != nil || n != 1 {
		t.Errorf("count of b after restart: %d, %v; want 1", n, err)
	}
	if n, err := scans.Count(t.Context(), item(t, "C3")); err != nil || n != 0 {
		t.Errorf("count of an item never scanned: %d, %v", n, err)
	}
}

// TestScansFlushOnTimer checks counts reach the file without a Close.
func TestScansFlushOnTimer(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "provtrail.db"))
	defer db.Close()
	scans, err := boltstore.OpenScans(db, boltstore.ScansConfig{FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer scans.Close()
	a := item(t, "A1")
	for range 3 {
		scans.Scan(t.Context(), a)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var v []byte
		db.View(func(tx *bbolt.Tx) error {
			if b := tx.Bucket([]byte("provenance-scans")); b != nil {
				v = append([]byte(nil), b.Get([]byte(a.String()))...)
			}
			return nil
		})
		if len(v) == 8 && v[7] == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("count not flushed within 5s: %x", v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
