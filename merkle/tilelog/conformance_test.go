package tilelog_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/merkle/logtest"
	"github.com/provtrail/provtrail/merkle/tilelog"
	"golang.org/x/mod/sumdb/note"
)

// writeThrough is a Mirror whose Append appends to the origin and returns
// once the Mirror published a checkpoint covering the leaves, so that the
// conformance suite can run on the Mirror: every read, proof and
// checkpoint it checks is the Mirror's.
type writeThrough struct {
	*tilelog.Mirror
	origin *boltlog.Log
}

func (w writeThrough) Append(ctx context.Context, leaves [][]byte) ([]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	idx, err := w.origin.Append(ctx, leaves)
	if err != nil || len(idx) == 0 {
		return idx, err
	}
	last := idx[0]
	for _, i := range idx {
		last = max(last, i)
	}
	for {
		cp, err := w.Mirror.Checkpoint(ctx)
		if err != nil {
			return nil, err
		}
		if cp.Size > last {
			return idx, nil
		}
		if st := w.Status(); st.Stopped != nil {
			return nil, st.Stopped
		}
		w.Sync()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// TestConformance runs the suite every merkle.Log runs on a Mirror of a
// boltlog origin served over HTTP, both kept under the suite's directory.
func TestConformance(t *testing.T) {
	logtest.Run(t, logtest.Config{
		Reopenable: true,
		Open: func(t *testing.T, dir string) logtest.Instance {
			s, vkey, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "origin.key"), origin)
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}
			odb, err := boltlog.OpenDB(filepath.Join(dir, "origin.db"))
			if err != nil {
				t.Fatal(err)
			}
			ol, err := boltlog.Open(t.Context(), boltlog.Config{DB: odb, Origin: origin, Signer: s})
			if err != nil {
				t.Fatal(err)
			}
			srv := &originServer{}
			srv.log.Store(ol)
			hs := httptest.NewServer(srv)

			throwaway, _, _ := merkle.GenerateKey(origin)
			ts, _ := note.NewSigner(throwaway)
			ldb, err := boltlog.OpenDB(filepath.Join(dir, "local.db"))
			if err != nil {
				t.Fatal(err)
			}
			local, err := boltlog.Open(t.Context(), boltlog.Config{DB: ldb, Origin: origin, Signer: ts})
			if err != nil {
				t.Fatal(err)
			}
			c, err := tilelog.NewClient(tilelog.ClientConfig{URL: hs.URL, LogKey: vkey})
			if err != nil {
				t.Fatal(err)
			}
			m, err := tilelog.Open(t.Context(), tilelog.Config{Client: c, Local: local, StatePath: filepath.Join(dir, "checkpoint"),
				Interval: time.Millisecond, MaxInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			w := writeThrough{Mirror: m, origin: ol}
			// The suite's first checks read an empty log: wait for the
			// origin's first checkpoint, so that the Mirror has one too.
			if _, err := w.Append(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			for {
				if cp, _ := m.Checkpoint(t.Context()); cp.Note != nil {
					break
				}
				m.Sync()
				time.Sleep(time.Millisecond)
			}
			return logtest.Instance{
				Log:      w,
				Verifier: v,
				Origin:   origin,
				Close: func() error {
					err := errors.Join(m.Close(), local.Close(), ldb.Close())
					hs.Close()
					return errors.Join(err, ol.Close(), odb.Close())
				},
			}
		},
	})
}
