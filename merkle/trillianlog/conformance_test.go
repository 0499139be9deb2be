package trillianlog

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/trillian"
	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/logtest"
	"golang.org/x/mod/sumdb/note"
)

const testOrigin = "provtrail.test/trillian"

// TestConformance runs the suite every merkle.Log runs against a real
// Trillian log server and signer on MariaDB. Each check gets a fresh tree;
// reopening is a new client on the same tree, with the key kept in dir.
func TestConformance(t *testing.T) {
	c := testCluster(t)
	logtest.Run(t, logtest.Config{
		Reopenable: true,
		Open: func(t *testing.T, dir string) logtest.Instance {
			l, v := c.openLog(t, dir)
			return logtest.Instance{Log: l, Verifier: v, Origin: testOrigin, Close: l.Close}
		},
	})
}

// openLog opens a Log on the tree kept in dir (creating the tree and key on
// first use), logging to t.
func (c *cluster) openLog(tb testing.TB, dir string) (*Log, note.Verifier) {
	tb.Helper()
	return c.openLogWith(tb, dir, c.Client)
}

// openLogWith is openLog through another client.
func (c *cluster) openLogWith(tb testing.TB, dir string, client trillian.TrillianLogClient) (*Log, note.Verifier) {
	tb.Helper()
	s, vkey, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), testOrigin)
	if err != nil {
		tb.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	l, err := Open(tb.Context(), Config{
		Client:       client,
		TreeID:       c.TreeFor(tb, dir),
		Origin:       testOrigin,
		Signer:       s,
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(tbWriter{tb}, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return l, v
}

// tbWriter sends log lines to t.Log.
type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(string(p))
	return len(p), nil
}
