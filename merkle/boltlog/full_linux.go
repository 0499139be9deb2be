//go:build linux

package boltlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"go.etcd.io/bbolt"
)

// diagnoseFull returns a failed commit's err, wrapping EFBIG or ENOSPC
// when the storage was full but bbolt did not say so: it reports a failure
// to grow its file as text ("file resize error: truncate ...: file too
// large"), dropping the errno, so a caller could not tell a full disk from
// a bug. The cause is read from the system instead: the process's file
// size limit, or the filesystem's free space, is short of the file's next
// growth step.
func diagnoseFull(db *bbolt.DB, err error) error {
	for _, full := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG} {
		if errors.Is(err, full) {
			return err
		}
	}
	fi, serr := os.Stat(db.Path())
	if serr != nil {
		return err
	}
	step := uint64(max(db.AllocSize, 0))
	var rl syscall.Rlimit // RLIM_INFINITY is all ones
	if syscall.Getrlimit(syscall.RLIMIT_FSIZE, &rl) == nil && rl.Cur != ^uint64(0) && uint64(fi.Size())+step > rl.Cur {
		return fmt.Errorf("%w (%w: the file is %d bytes, its size limit %d)", err, syscall.EFBIG, fi.Size(), rl.Cur)
	}
	var st syscall.Statfs_t
	if syscall.Statfs(filepath.Dir(db.Path()), &st) == nil && st.Bavail*uint64(st.Bsize) < step {
		return fmt.Errorf("%w (%w: %d bytes free)", err, syscall.ENOSPC, st.Bavail*uint64(st.Bsize))
	}
	return err
}
