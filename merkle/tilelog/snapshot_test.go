package tilelog_test

import (
	"bytes"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/provtrail/provtrail/merkle"
	"github.com/provtrail/provtrail/merkle/tilelog"
)

// TestSnapshot reads a log through its tiles at one checkpoint: the same
// leaves and proofs as the log itself gives, nothing beyond the
// checkpoint, no appends, and a tile that contradicts the root refused.
func TestSnapshot(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	grow(t, f.real, "a", 600)
	c, err := tilelog.NewClient(tilelog.ClientConfig{URL: f.url, LogKey: f.vkey})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Snapshot(cp)
	grow(t, f.real, "b", 10) // the origin moves on; the snapshot does not

	if got, err := s.Checkpoint(ctx); err != nil || !bytes.Equal(got.Note, cp.Note) {
		t.Fatalf("Checkpoint: %v, %v", got, err)
	}
	got, err := s.Leaves(ctx, 250, 600)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.real.Leaves(ctx, 250, 600)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("Leaves(250, 600) differ from the origin's")
	}
	for _, p := range [][2]uint64{{0, 1}, {0, 600}, {599, 600}, {257, 513}, {300, 301}} {
		got, err := s.InclusionProof(ctx, p[0], p[1])
		if err != nil {
			t.Fatalf("InclusionProof%v: %v", p, err)
		}
		want, err := f.real.InclusionProof(ctx, p[0], p[1])
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("InclusionProof%v = %v, the origin's %v (%v)", p, got, want, err)
		}
	}
	for _, p := range [][2]uint64{{1, 600}, {256, 600}, {300, 513}, {0, 600}, {600, 600}} {
		got, err := s.ConsistencyProof(ctx, p[0], p[1])
		if err != nil {
			t.Fatalf("ConsistencyProof%v: %v", p, err)
		}
		want, err := f.real.ConsistencyProof(ctx, p[0], p[1])
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ConsistencyProof%v = %v, the origin's %v (%v)", p, got, want, err)
		}
	}
	var re *merkle.RangeError
	if _, err := s.Leaves(ctx, 0, 601); !errors.As(err, &re) {
		t.Errorf("Leaves past the checkpoint: %v, want a *merkle.RangeError", err)
	}
	if _, err := s.InclusionProof(ctx, 600, 601); !errors.As(err, &re) {
		t.Errorf("InclusionProof past the checkpoint: %v, want a *merkle.RangeError", err)
	}
	if _, err := s.ConsistencyProof(ctx, 1, 610); !errors.As(err, &re) {
		t.Errorf("ConsistencyProof past the checkpoint: %v, want a *merkle.RangeError", err)
	}
	if _, err := s.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, merkle.ErrReadOnly) {
		t.Errorf("Append: %v, want merkle.ErrReadOnly", err)
	}

	// An origin whose level-0 tiles no longer hash to the root it signed.
	f.srv.setTamper(func(path string, b []byte) (int, []byte) {
		if strings.HasPrefix(path, "tile/0/") {
			b = bytes.Clone(b)
			b[0] ^= 1
		}
		return http.StatusOK, b
	})
	if _, err := s.Leaves(ctx, 0, 10); !errors.Is(err, tilelog.ErrInconsistent) {
		t.Errorf("Leaves from altered tiles: %v, want ErrInconsistent", err)
	}
	if _, err := s.InclusionProof(ctx, 3, 600); !errors.Is(err, tilelog.ErrInconsistent) {
		t.Errorf("InclusionProof from altered tiles: %v, want ErrInconsistent", err)
	}
}
