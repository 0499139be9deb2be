package boltlog

import (
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// OpenDB opens (creating if needed) the bbolt file at path with the
// settings a log wants: the hash-map freelist, which stays fast with many
// free pages, a lock timeout instead of waiting forever for another
// process, and file growth in 4 MiB steps rather than bbolt's 16 MiB, so the
// file does not run far ahead of its data.
func OpenDB(path string) (*bbolt.DB, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      5 * time.Second,
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.AllocSize = 4 << 20
	return db, nil
}
