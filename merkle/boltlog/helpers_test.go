package boltlog

import (
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "provtrail.test/log"

// testKey makes a fresh log key for one test.
func testKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := merkle.GenerateKey(testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// openLog opens the log in dir/log.db; closing is the caller's (see t.Cleanup
// in callers), so reopen tests can close early.
func openLog(t testing.TB, dir string, s note.Signer) (*Log, *bbolt.DB) {
	t.Helper()
	db := openDB(t, filepath.Join(dir, "log.db"))
	l, err := Open(t.Context(), Config{DB: db, Origin: testOrigin, Signer: s})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	return l, db
}
