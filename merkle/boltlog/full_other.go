//go:build !linux

package boltlog

import "go.etcd.io/bbolt"

// diagnoseFull returns err: only Linux is diagnosed (see full_linux.go).
func diagnoseFull(db *bbolt.DB, err error) error { return err }
