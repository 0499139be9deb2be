package boltlog

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/logtest"
	"golang.org/x/mod/sumdb/note"
)

// TestConformance runs the suite every merkle.Log runs on the bbolt log.
func TestConformance(t *testing.T) {
	logtest.Run(t, logtest.Config{
		Reopenable: true,
		Open: func(t *testing.T, dir string) logtest.Instance {
			s, vkey, err := merkle.LoadOrCreateKeyFile(filepath.Join(dir, "log.key"), testOrigin)
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(vkey)
			if err != nil {
				t.Fatal(err)
			}
			l, db := openLog(t, dir, s)
			return logtest.Instance{
				Log:      l,
				Verifier: v,
				Origin:   testOrigin,
				Close:    func() error { return errors.Join(l.Close(), db.Close()) },
			}
		},
	})
}
