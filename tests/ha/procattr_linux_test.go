//go:build linux

package ha_test

import "syscall"

// procAttr puts a child in its own process group and has the kernel send it deathSig if
// the test binary dies without running its cleanups (a go test -timeout panic), so that no
// replica or nginx outlives the test.
func procAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
}
