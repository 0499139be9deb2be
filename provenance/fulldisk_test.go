package provenance_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/provtrail/provtrail/merkle/boltlog"
	"github.com/provtrail/provtrail/provenance"
	"github.com/provtrail/provtrail/provenance/boltstore"
)

// A fullStore is a Store on a full disk: Save fails with ENOSPC, as a
// bbolt commit does, while full is set.
type fullStore struct {
	provenance.Store
	full   atomic.Bool
	failed atomic.Int64 // saves refused
}

func (s *fullStore) Save(ctx context.Context, d provenance.Delta) error {
	if s.full.Load() {
		s.failed.Add(1)
		return fmt.Errorf("save index: write provtrail.db: %w", syscall.ENOSPC)
	}
	return s.Store.Save(ctx, d)
}

// TestServiceStartsOnFullDisk opens a Service whose index lags the log on
// a disk that is full (cmd/provd's TestDiskFull restarts provd so): it
// replays the log and answers, though it cannot save the index, and saves
// it once there is room.
func TestServiceStartsOnFullDisk(t *testing.T) {
	w := newWorld(t)
	w.ok(w.enroll("acme", provenance.RoleManufacturer))
	item := w.newItem()
	w.ok(w.register("acme", item))

	// A second index of the same log, empty: it lags by the whole log.
	db, err := boltlog.OpenDB(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bs, err := boltstore.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	store := &fullStore{Store: bs}
	store.full.Store(true)
	cfg := w.config()
	cfg.Store, cfg.SaveInterval = store, 10*time.Millisecond
	svc, err := provenance.NewService(t.Context(), cfg)
	if err != nil {
		t.Fatalf("the Service did not start on a full disk: %v", err)
	}
	defer svc.Close()
	if v, err := svc.Item(t.Context(), item); err != nil || len(v.Events) != 1 {
		t.Fatalf("item on a full disk: %+v, %v", v, err)
	}
	if store.failed.Load() == 0 {
		t.Fatal("no save was tried")
	}

	store.full.Store(false)
	size := w.size()
	deadline := time.Now().Add(10 * time.Second)
	for {
		applied, err := bs.Applied(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if applied == size {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index was not saved once there was room: applied %d of %d", applied, size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
