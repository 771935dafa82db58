package bench

import "syscall"

// childAttr kills a child when this process dies, so an interrupted run
// leaves no broker, upstream or nginx behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
