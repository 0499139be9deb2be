package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/cmd/internal/datadir"
	"github.com/provtrail/provtrail/merkle/trillianlog/trilliantest"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
	"github.com/provtrail/provtrail/provenance/sqlstore"
)

// mariadb starts a MariaDB server for the tests that need one, once.
var mariadb = trilliantest.Harness{DatabaseOnly: true}

func TestMain(m *testing.M) {
	code := m.Run()
	mariadb.Stop()
	os.Exit(code)
}

// dumpShared dumps the shared index in the database dsn names.
func dumpShared(t *testing.T, dsn string) string {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b bytes.Buffer
	if err := s.Dump(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// withoutFormat drops the line of an index dump that says the index's
// format.
func withoutFormat(dump string) string {
	var out []string
	for _, line := range strings.Split(dump, "\n") {
		if !strings.HasPrefix(line, "meta 666f726d6174 ") { // "format"
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// TestRebuildSharedIndex rebuilds an index in MariaDB from the log a
// provd serves: it ends equal to the index provd keeps itself, and a
// rebuild refused (no server, no pinned keys, the wrong keys, an index of
// another log) changes nothing.
func TestRebuildSharedIndex(t *testing.T) {
	c := mariadb.Cluster(t)
	w := newWorld(t)
	acme := w.enroll("acme", "manufacturer", "Acme Ltd")
	courier := w.enroll("courier-x", "courier", "Courier X")
	for range 3 {
		item := w.prov("register", "--key", acme, "--gtin", testGTIN, "--product", "Trail chair").ok(t).line()
		w.prov("handoff", "--key", acme, "--item", item, "--to", "courier-x").ok(t)
		w.prov("receive", "--key", courier, "--item", item).ok(t)
	}
	policy := w.path("trust.policy")
	writeFile(t, policy, []byte(w.prov("keys", "--policy").ok(t).stdout))

	// The index the data directory keeps, as its provd would serve it.
	n, err := datadir.Open(t.Context(), datadir.Config{Dir: w.data})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := n.Store.(*boltstore.Store).Dump(t.Context(), &want); err != nil {
		t.Fatal(err)
	}
	trust := n.Trust
	n.Close()
	url := w.serve()

	// A shared index recorded as this log's, as a replica leaves it.
	dsn := c.NewDatabase(t)
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{DSN: dsn, Log: datadir.LogName(trust, datadir.LogConfig{Backend: datadir.BackendBolt})})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	index := "mysql://" + dsn
	empty := dumpShared(t, dsn)

	prov(t, "rebuild", "--index", index, "--policy", policy).fails(t, exitUsage, "give --server")
	prov(t, "rebuild", "--index", index, "--server", url).fails(t, exitUsage, "pin the log's keys")
	prov(t, "rebuild", "--index", "postgres://x", "--server", url, "--policy", policy).fails(t, exitUsage, "want mysql://")
	otherLog := newVKey(t, trust.Origin)
	prov(t, "rebuild", "--index", index, "--server", url, "--log-key", otherLog, "--operator-key", trust.OperatorKey).
		fails(t, exitFail, "checkpoint")
	if got := dumpShared(t, dsn); got != empty {
		t.Fatalf("a refused rebuild changed the index:\n%s", got)
	}

	r := prov(t, "rebuild", "--index", index, "--server", url, "--policy", policy).ok(t)
	if !strings.Contains(r.stdout, "log positions from "+url) {
		t.Errorf("rebuild printed %q", r.stdout)
	}
	// Each index writes its own format version; every other line is alike.
	if got, want := withoutFormat(dumpShared(t, dsn)), withoutFormat(want.String()); got != want {
		t.Errorf("the rebuilt shared index differs from the data directory's:\n%s\nwant:\n%s", got, want)
	}

	// An index recorded as another log's is refused, untouched.
	other := c.NewDatabase(t)
	s, err = sqlstore.Open(t.Context(), sqlstore.Config{DSN: other, Log: datadir.LogName(provenance.Trust{Origin: trust.Origin, LogKey: otherLog}, datadir.LogConfig{Backend: datadir.BackendBolt})})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dumpShared(t, other)
	prov(t, "rebuild", "--index", "mysql://"+other, "--server", url, "--policy", policy).fails(t, exitFail, "built from")
	if got := dumpShared(t, other); got != before {
		t.Errorf("a rebuild refused for another log's index changed it")
	}
}
