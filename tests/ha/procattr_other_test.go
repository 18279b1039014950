//go:build unix && !linux

package ha_test

import "syscall"

// procAttr puts a child in its own process group. Only Linux can also tie its life to the
// test binary's; elsewhere a test binary that dies without its cleanups leaves it running.
func procAttr(deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
