package trilliantest

import "syscall"

// procAttr makes the servers die with the test binary, even if it is
// killed before TestMain can stop them.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
