package witness

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/logtest"
	"golang.org/x/mod/sumdb/note"
)

// startWitness runs a witness of logVkey keeping its state in dir.
func startWitness(t *testing.T, name, logVkey, dir string) (*httptest.Server, string) {
	t.Helper()
	skeyPath := filepath.Join(dir, name+".key")
	if _, _, err := merkle.LoadOrCreateKeyFile(skeyPath, "witness.test/"+name); err != nil {
		t.Fatal(err)
	}
	return newWitnessFromKey(t, skeyPath, logVkey, filepath.Join(dir, name+".state"))
}

// witnessedPolicy is a policy for the log and the witnesses, with quorum.
func witnessedPolicy(t *testing.T, logVkey, quorum string, ws map[string][2]string) merkle.Policy {
	t.Helper()
	text := "log " + logVkey + "\n"
	for name, w := range ws {
		text += fmt.Sprintf("witness %s %s %s\n", name, w[0], w[1])
	}
	p, err := merkle.ParsePolicy([]byte(text + quorum + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWitnessedPublishesOnlyQuorum(t *testing.T) {
	dir := t.TempDir()
	lg := newLog(t, "")
	s1, k1 := startWitness(t, "w1", lg.vkey, dir)
	s2, k2 := startWitness(t, "w2", lg.vkey, dir)
	ws := map[string][2]string{"w1": {k1, s1.URL}, "w2": {k2, s2.URL}}
	policy := witnessedPolicy(t, lg.vkey, "group both all w1 w2\nquorum both", ws)
	wl, err := NewWitnessed(t.Context(), WitnessedConfig{Log: lg.log, Policy: policy, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	idx, err := wl.Append(t.Context(), [][]byte{[]byte("a"), []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := wl.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size <= idx[1] {
		t.Fatalf("published size %d does not cover index %d", cp.Size, idx[1])
	}
	if _, err := policy.Verify(cp.Note); err != nil {
		t.Fatalf("published checkpoint lacks the quorum: %v", err)
	}
	// The log's own checkpoint alone does not meet the policy.
	raw, _ := lg.log.Checkpoint(t.Context())
	if _, err := policy.Verify(raw.Note); !errors.Is(err, merkle.ErrPolicy) {
		t.Fatalf("an uncosigned checkpoint met the quorum: %v", err)
	}

	// One witness down: with quorum "both" nothing new is published, and
	// Append says its leaves are not witnessed yet.
	s2.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := wl.Append(ctx, [][]byte{[]byte("c")}); err == nil || !strings.Contains(err.Error(), "not yet witnessed") {
		t.Fatalf("append with a witness down: %v", err)
	}
	if now, _ := wl.Checkpoint(t.Context()); now.Size != cp.Size {
		t.Fatalf("published size moved to %d without the quorum", now.Size)
	}
	// With "any", the remaining witness is enough.
	anyPolicy := witnessedPolicy(t, lg.vkey, "group one any w1 w2\nquorum one", ws)
	wl2, err := NewWitnessed(t.Context(), WitnessedConfig{Log: lg.log, Policy: anyPolicy, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer wl2.Close()
	if _, err := wl2.Append(t.Context(), [][]byte{[]byte("d")}); err != nil {
		t.Fatalf("append with one of two witnesses and quorum any: %v", err)
	}
}

// TestWitnessedConformance runs the suite every merkle.Log runs on a bbolt
// log published through a witness.
func TestWitnessedConformance(t *testing.T) {
	logtest.Run(t, logtest.Config{
		Reopenable: true,
		Open: func(t *testing.T, dir string) logtest.Instance {
			s, vkey, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), origin)
			if err != nil {
				t.Fatal(err)
			}
			db, err := boltlog.OpenDB(filepath.Join(dir, "log.db"))
			if err != nil {
				t.Fatal(err)
			}
			l, err := boltlog.Open(t.Context(), boltlog.Config{DB: db, Origin: origin, Signer: s})
			if err != nil {
				t.Fatal(err)
			}
			srv, wkey := startWitness(t, "w1", vkey, dir)
			policy := witnessedPolicy(t, vkey, "quorum w1", map[string][2]string{"w1": {wkey, srv.URL}})
			wl, err := NewWitnessed(t.Context(), WitnessedConfig{Log: l, Policy: policy, Interval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := note.NewVerifier(vkey)
			return logtest.Instance{Log: wl, Verifier: v, Origin: origin, Close: func() error {
				err := errors.Join(wl.Close(), l.Close(), db.Close())
				srv.Close()
				return err
			}}
		},
	})
}
