package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/provenance/sqlstore"
	"github.com/provtrail/provtrail/provenance/storetest"
	"go.etcd.io/bbolt"
)

// The tests run against a real MariaDB, started once per test binary by
// trilliantest (without Trillian's servers), each on a fresh database.
// Without MariaDB they skip, saying what to install; with CI set they
// fail.

var harness = trilliantest.Harness{DatabaseOnly: true}

func TestMain(m *testing.M) {
	code := m.Run()
	harness.Stop()
	os.Exit(code)
}

// newDatabase returns the DSN of a fresh database.
func newDatabase(t *testing.T) string {
	t.Helper()
	return harness.Cluster(t).NewDatabase(t)
}

// open opens the index in the database dsn names, closed when the test
// ends.
func open(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the database dsn names directly, to look behind the Store.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) provenance.Store {
		return open(t, newDatabase(t))
	})
}

func item(t *testing.T, serial string) provenance.ItemID {
	t.Helper()
	id, err := provenance.NewItemID("09506000134352", serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func itemRecord(id provenance.ItemID, custodian string, events ...uint64) provenance.ItemRecord {
	return provenance.ItemRecord{
		State: provenance.ItemState{ID: id, Product: "Tote <b>\u6b63\u54c1</b>", RegisteredBy: "acme", Registered: events[0],
			Custodian: custodian, Status: provenance.StatusInCustody, LastIndex: events[len(events)-1], Events: len(events),
			Last: sha256.Sum256([]byte(custodian))},
		Events: events,
	}
}

func actorRecord(id string, events ...uint64) provenance.ActorRecord {
	return provenance.ActorRecord{
		State:  provenance.ActorState{Actor: provenance.Actor{ID: id, Role: provenance.RoleCourier, Name: "Swift", Key: id + "+01234567+AAAA"}},
		Events: events,
	}
}

// TestReplicasRace has two Stores on one database, as two replicas, save
// the same range at the same moment, round after round: one saves it,
// the other gets ErrStoreGap and saves nothing.
func TestReplicasRace(t *testing.T) {
	dsn := newDatabase(t)
	replicas := []*sqlstore.Store{open(t, dsn), open(t, dsn)}
	id := item(t, "RACE")
	const rounds = 40
	wins := [2]int{}
	for i := range uint64(rounds) {
		start := make(chan struct{})
		errs := make([]error, 2)
		done := make(chan struct{})
		for r, s := range replicas {
			go func() {
				defer func() { done <- struct{}{} }()
				<-start
				errs[r] = s.Save(t.Context(), provenance.Delta{From: i, To: i + 1,
					Items:   []provenance.ItemRecord{itemRecord(id, fmt.Sprint("replica-", r), 0, i)},
					Actors:  []provenance.ActorRecord{actorRecord(fmt.Sprint("replica-", r), i)},
					Refused: []provenance.Refusal{{Index: i, Reason: fmt.Sprint("replica-", r)}},
				})
			}()
		}
		close(start)
		<-done
		<-done
		var won []int
		for r, err := range errs {
			switch {
			case err == nil:
				won = append(won, r)
			case !errors.Is(err, provenance.ErrStoreGap):
				t.Fatalf("round %d, replica %d: %v, want nil or an error matching ErrStoreGap", i, r, err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d replicas saved the range, want 1 (errors %v)", i, len(won), errs)
		}
		w := won[0]
		wins[w]++
		winner := fmt.Sprint("replica-", w)
		for _, s := range replicas {
			if at, err := s.Applied(t.Context()); err != nil || at != i+1 {
				t.Fatalf("round %d: applied %d, %v; want %d", i, at, err, i+1)
			}
			got, err := s.Item(t.Context(), id)
			if err != nil || !reflect.DeepEqual(got, itemRecord(id, winner, 0, i)) {
				t.Fatalf("round %d: item %+v, %v; want the record replica %d saved", i, got, err, w)
			}
			if r, err := s.Refused(t.Context(), i, i+1); err != nil || len(r) != 1 || r[0].Reason != winner {
				t.Fatalf("round %d: refusals %+v, %v; want replica %d's", i, r, err, w)
			}
			if _, err := s.Actor(t.Context(), fmt.Sprint("replica-", 1-w)); i == 0 && !errors.Is(err, provenance.ErrNotFound) {
				t.Fatalf("round 0: the losing replica's actor reads %v, want not found", err)
			}
		}
	}
	t.Logf("replica 0 won %d rounds, replica 1 %d", wins[0], wins[1])
}

// TestInterruptedSave stops a Save in the middle of its transaction:
// after the actors are written, while the items wait for a row lock that
// another connection holds. Its context is cancelled, or its connection
// killed. The Save fails, the index is as before (position, records), and
// the next Save of the same range succeeds once the server has rolled the
// interrupted one back.
func TestInterruptedSave(t *testing.T) {
	for _, how := range []string{"cancel", "kill"} {
		t.Run(how, func(t *testing.T) {
			dsn := newDatabase(t)
			s := open(t, dsn)
			db := rawDB(t, dsn)
			old := itemRecord(item(t, "OLD"), "acme", 0)
			if err := s.Save(t.Context(), provenance.Delta{From: 0, To: 1, Items: []provenance.ItemRecord{old}}); err != nil {
				t.Fatal(err)
			}
			blocked := item(t, "BLOCKED")
			// Another transaction inserts the item the Save will write, and
			// holds the row's lock until it rolls back.
			blocker, err := db.BeginTx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Rollback()
			if _, err := blocker.Exec(`INSERT INTO provtrail_items (path, record) VALUES (?, '{}')`, []byte(blocked.String())); err != nil {
				t.Fatal(err)
			}
			// The blocker's own INSERT is not the Save's.
			var blockerID int64
			if err := blocker.QueryRow(`SELECT CONNECTION_ID()`).Scan(&blockerID); err != nil {
				t.Fatal(err)
			}

			d := provenance.Delta{From: 1, To: 3,
				Actors:  []provenance.ActorRecord{actorRecord("swift", 1)},
				Items:   []provenance.ItemRecord{itemRecord(old.State.ID, "swift", 0, 1), itemRecord(blocked, "acme", 2)},
				Claims:  []provenance.ClaimRecord{{Claim: sha256.Sum256([]byte("c")), Item: blocked, Index: 2}},
				Refused: []provenance.Refusal{{Index: 1, Reason: "x"}},
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			saved := make(chan error, 1)
			go func() { saved <- s.Save(ctx, d) }()

			// The Save's connection, once it waits on the items' lock.
			var conn int64
			deadline := time.Now().Add(10 * time.Second)
			for {
				err := db.QueryRow(`SELECT ID FROM information_schema.PROCESSLIST
					WHERE INFO LIKE 'INSERT INTO provtrail_items%' AND ID <> CONNECTION_ID() AND ID <> ?`, blockerID).Scan(&conn)
				if err == nil {
					break
				}
				if !errors.Is(err, sql.ErrNoRows) {
					t.Fatal(err)
				}
				select {
				case err := <-saved:
					t.Fatalf("the Save ended before it waited for the lock: %v", err)
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the Save does not wait for the items' lock")
				}
				time.Sleep(10 * time.Millisecond)
			}
			switch how {
			case "cancel":
				cancel()
			case "kill":
				if _, err := db.Exec(fmt.Sprintf("KILL %d", conn)); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-saved:
				if err == nil {
					t.Fatal("the interrupted Save succeeded")
				}
				t.Logf("the interrupted Save: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the interrupted Save did not return")
			}
			if err := blocker.Rollback(); err != nil {
				t.Fatal(err)
			}

			// Nothing of it is there, before or after the server notices.
			check := func() {
				t.Helper()
				if at, err := s.Applied(t.Context()); err != nil || at != 1 {
					t.Fatalf("applied %d, %v after an interrupted Save; want 1", at, err)
				}
				if got, err := s.Item(t.Context(), old.State.ID); err != nil || !reflect.DeepEqual(got, old) {
					t.Fatalf("item %+v, %v after an interrupted Save; want it as before", got, err)
				}
				for what, err := range map[string]error{
					"actor": func() error { _, err := s.Actor(t.Context(), "swift"); return err }(),
					"item":  func() error { _, err := s.Item(t.Context(), blocked); return err }(),
					"claim": func() error { _, err := s.Claim(t.Context(), sha256.Sum256([]byte("c"))); return err }(),
				} {
					if !errors.Is(err, provenance.ErrNotFound) {
						t.Fatalf("the %s of an interrupted Save reads %v, want not found", what, err)
					}
				}
				if r, err := s.Refused(t.Context(), 0, 10); err != nil || len(r) != 0 {
					t.Fatalf("refusals %+v, %v after an interrupted Save; want none", r, err)
				}
			}
			check()
			// The next Save waits for the meta row's lock until the server
			// has rolled the interrupted transaction back.
			sctx, scancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer scancel()
			if err := s.Save(sctx, d); err != nil {
				t.Fatalf("saving the range again: %v", err)
			}
			if at, err := s.Applied(t.Context()); err != nil || at != 3 {
				t.Fatalf("applied %d, %v; want 3", at, err)
			}
		})
	}
}

// TestOtherFormatDropped checks that an index of another format is
// dropped on open, so that the Service rebuilds it from the log rather
// than read records it does not understand, and that one of this format
// is kept.
func TestOtherFormatDropped(t *testing.T) {
	dsn := newDatabase(t)
	s := open(t, dsn)
	if err := s.Save(t.Context(), provenance.Delta{From: 0, To: 42, Actors: []provenance.ActorRecord{actorRecord("swift", 1)}}); err != nil {
		t.Fatal(err)
	}
	s = open(t, dsn)
	if at, err := s.Applied(t.Context()); err != nil || at != 42 {
		t.Fatalf("reopening an index of this format: applied %d, %v; want it kept at 42", at, err)
	}
	for _, stmt := range []string{
		`UPDATE provtrail_meta SET format = '0'`, // an older layout
		`UPDATE provtrail_meta SET format = ''`,  // a crash while it was being reset
	} {
		if _, err := rawDB(t, dsn).Exec(stmt); err != nil {
			t.Fatal(err)
		}
		s = open(t, dsn)
		if at, err := s.Applied(t.Context()); err != nil || at != 0 {
			t.Fatalf("after %s: applied %d, %v; want the index dropped", stmt, at, err)
		}
		if _, err := s.Actor(t.Context(), "swift"); !errors.Is(err, provenance.ErrNotFound) {
			t.Fatalf("after %s: a record of the dropped index reads %v", stmt, err)
		}
		if err := s.Save(t.Context(), provenance.Delta{From: 0, To: 42, Actors: []provenance.ActorRecord{actorRecord("swift", 1)}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOtherLog checks that an index built from one log refuses to open
// for another, and opens for its own.
func TestOtherLog(t *testing.T) {
	dsn := newDatabase(t)
	for _, log := range []string{"", "log A", "", "log A"} {
		s, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Log: log})
		if err != nil {
			t.Fatalf("open for %q: %v", log, err)
		}
		s.Close()
	}
	_, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Log: "log B"})
	if !errors.Is(err, sqlstore.ErrOtherLog) || !strings.Contains(err.Error(), `"log A"`) {
		t.Fatalf("open for another log: %v, want an error matching ErrOtherLog naming log A", err)
	}
	// A reset keeps the log: the index is rebuilt from the same one.
	s := open(t, dsn)
	if err := s.Reset(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Log: "log B"}); !errors.Is(err, sqlstore.ErrOtherLog) {
		t.Fatalf("open for another log after a reset: %v", err)
	}
}

// TestDumpLikeBolt saves the same deltas to this index and to a
// boltstore one: their dumps are the same lines, but for the format.
func TestDumpLikeBolt(t *testing.T) {
	s := open(t, newDatabase(t))
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "index.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	odd := item(t, `a/b?c=d&e%"'<>!*+,_:`)
	for _, d := range []provenance.Delta{
		{From: 0, To: 5,
			Actors:  []provenance.ActorRecord{actorRecord("swift", 0), actorRecord("acme", 1, 2)},
			Items:   []provenance.ItemRecord{itemRecord(odd, "acme", 2), itemRecord(item(t, "S2"), "acme", 3)},
			Claims:  []provenance.ClaimRecord{{Claim: sha256.Sum256([]byte("claim")), Item: odd, Index: 3}, {Claim: sha256.Sum256([]byte("b")), Item: odd, Index: 4}},
			Refused: []provenance.Refusal{{Index: 4, Reason: "stale prev: \u2014 <b>"}},
		},
		{From: 5, To: 300,
			Actors:  []provenance.ActorRecord{actorRecord("swift", 0, 6)},
			Items:   []provenance.ItemRecord{itemRecord(odd, "swift", 2, 6, 7)},
			Refused: []provenance.Refusal{{Index: 5, Reason: "a"}, {Index: 256, Reason: "b"}},
		},
	} {
		for _, st := range []provenance.Store{s, b} {
			if err := st.Save(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
	}
	var fromSQL, fromBolt bytes.Buffer
	if err := s.Dump(t.Context(), &fromSQL); err != nil {
		t.Fatal(err)
	}
	if err := b.Dump(t.Context(), &fromBolt); err != nil {
		t.Fatal(err)
	}
	withoutFormat := func(dump string) string {
		var keep []string
		for line := range strings.Lines(dump) {
			if !strings.HasPrefix(line, fmt.Sprintf("meta %x ", "format")) {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "")
	}
	if got, want := withoutFormat(fromSQL.String()), withoutFormat(fromBolt.String()); got != want {
		t.Fatalf("the dumps differ:\nsqlstore:\n%s\nboltstore:\n%s", got, want)
	}
	if n := strings.Count(fromSQL.String(), "\n"); n != 2+2+2+2+3 {
		t.Errorf("the dump has %d lines, want 11:\n%s", n, fromSQL.String())
	}
}

// TestBadDSN checks that a DSN that does not parse, or names no database,
// is refused before connecting, without repeating the password.
func TestBadDSN(t *testing.T) {
	for _, dsn := range []string{
		"user:secret@tcp(127.0.0.1:3306", // no closing parenthesis
		"user:secret@tcp(127.0.0.1:3306)",
		"user:secret@tcp(127.0.0.1:3306)/",
	} {
		_, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("DSN %q: %v", dsn, err)
		}
		if _, err := sqlstore.Describe(dsn); err == nil {
			t.Errorf("Describe(%q) succeeded", dsn)
		}
	}
	if d, err := sqlstore.Describe("user:secret@tcp(db.example:3306)/provtrail?tls=true"); err != nil || d != "user@tcp(db.example:3306)/provtrail" {
		t.Errorf("Describe: %q, %v", d, err)
	}
}
