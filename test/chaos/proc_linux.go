package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the child get SIGKILL when the harness dies, so an
// interrupted run leaves no processes behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
