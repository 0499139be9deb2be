package boltlog

import (
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/bbolt"
)

func TestDiagStorage(t *testing.T) {
	if os.Getenv("DIAG") == "" {
		t.Skip()
	}
	dir := t.TempDir()
	s, _ := testKey(t)
	l, db := openLog(t, dir, s)
	const n = 300000
	for i := uint64(0); i < n; i += 4096 {
		leaves := make([][]byte, min(4096, n-i))
		for j := range leaves {
			leaves[j] = benchLeaf(i + uint64(j))
		}
		if _, err := l.Append(t.Context(), leaves); err != nil {
			t.Fatal(err)
		}
	}
	db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket([]byte(logBucket))
		for _, name := range []string{leafBucket, hashBucket, dedupBucket} {
			st := root.Bucket([]byte(name)).Stats()
			alloc := st.BranchAlloc + st.LeafAlloc
			t.Logf("%s: keys %d leafpages %d overflow %d alloc %d inuse %d per-leaf alloc %.1f", name, st.KeyN, st.LeafPageN, st.LeafOverflowN, alloc, st.LeafInuse+st.BranchInuse, float64(alloc)/n)
		}
		return nil
	})
	stats := db.Stats()
	info, _ := os.Stat(filepath.Join(dir, "log.db"))
	t.Logf("free pages %d pending %d freealloc %d file %d overhead/leaf %.1f", stats.FreePageN, stats.PendingPageN, stats.FreeAlloc, info.Size(), float64(info.Size()-n*leafSize)/n)
	l.Close()
	db.Close()
}
