package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/provtrail/provtrail/provenance"
	"go.etcd.io/bbolt"
)

// scanBucket holds the scan counts, outside the index: they are not derived
// from the log, and a rebuild of the index keeps them.
const scanBucket = "provenance-scans"

// ScansConfig configures Scans.
type ScansConfig struct {
	// FlushInterval is how often counts are written. Default 1s.
	FlushInterval time.Duration
	Logger        *slog.Logger
}

// Scans counts how often each item's code was opened (web.ScanCounter).
// Counts are kept in memory and written to a bucket of their own in db
// every FlushInterval and on Close, one transaction per flush, so that a
// page view never waits for an fsync. A crash loses at most the counts of
// the last interval.
type Scans struct {
	db     *bbolt.DB
	logger *slog.Logger

	mu     sync.Mutex
	counts map[provenance.ItemID]uint64 // every count read or changed, as now
	dirty  map[provenance.ItemID]bool   // changed since the last flush
	closed bool

	flushMu sync.Mutex // serializes flushes
	stop    chan struct{}
	stopped chan struct{}
}

// OpenScans returns the scan counts kept in db, creating their bucket on
// first use, and starts flushing them. The caller owns db, and calls Close
// before closing it.
func OpenScans(db *bbolt.DB, cfg ScansConfig) (*Scans, error) {
	if db == nil {
		return nil, errors.New("boltstore: no database")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(scanBucket))
		return err
	}); err != nil {
		return nil, fmt.Errorf("boltstore: create scan bucket: %w", err)
	}
	s := &Scans{
		db: db, logger: cfg.Logger,
		counts: map[provenance.ItemID]uint64{}, dirty: map[provenance.ItemID]bool{},
		stop: make(chan struct{}), stopped: make(chan struct{}),
	}
	go s.run(cfg.FlushInterval)
	return s, nil
}

func (s *Scans) run(every time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.Flush(context.Background()); err != nil {
			s.logger.Error("flush scan counts", "err", err)
		}
	}
}

// Scan records one more scan of id and returns its count, this one
// included.
func (s *Scans) Scan(ctx context.Context, id provenance.ItemID) (uint64, error) {
	return s.add(ctx, id, 1)
}

// Count returns how often id was scanned.
func (s *Scans) Count(ctx context.Context, id provenance.ItemID) (uint64, error) {
	return s.add(ctx, id, 0)
}

func (s *Scans) add(ctx context.Context, id provenance.ItemID, n uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errors.New("scan counts are closed")
	}
	c, ok := s.counts[id]
	if !ok {
		// A read transaction never waits for a writer's fsync.
		if err := s.db.View(func(tx *bbolt.Tx) error {
			if v := tx.Bucket([]byte(scanBucket)).Get([]byte(id.String())); len(v) == 8 {
				c = binary.BigEndian.Uint64(v)
			}
			return nil
		}); err != nil {
			return 0, fmt.Errorf("read scan count of %s: %w", id, err)
		}
	}
	if n > 0 {
		c += n
		s.dirty[id] = true
	}
	s.counts[id] = c
	return c, nil
}

// Flush writes the counts changed since the last flush, in one
// transaction. On failure they are kept for the next flush.
func (s *Scans) Flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := make(map[provenance.ItemID]uint64, len(s.dirty))
	for id := range s.dirty {
		batch[id] = s.counts[id]
	}
	s.dirty = map[provenance.ItemID]bool{}
	s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		s.requeue(batch)
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(scanBucket))
		for id, c := range batch {
			if err := b.Put([]byte(id.String()), u64(c)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.requeue(batch)
		return fmt.Errorf("write %d scan counts: %w", len(batch), err)
	}
	return nil
}

// requeue marks the items of a failed flush dirty again. Their counts in
// s.counts are at least as new as the batch's.
func (s *Scans) requeue(batch map[provenance.ItemID]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range batch {
		s.dirty[id] = true
	}
}

// Close stops the flusher and writes what is left. Scan fails afterwards.
func (s *Scans) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	return s.Flush(context.Background())
}
