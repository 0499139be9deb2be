//go:build !linux

package trilliantest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
