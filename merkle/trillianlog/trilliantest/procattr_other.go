//go:build !linux

package trillianlog

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
