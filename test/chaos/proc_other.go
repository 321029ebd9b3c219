//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"time"
)

func dieWithParent(*exec.Cmd) {}

// cpuTime is only measured on Linux.
func cpuTime(int) (time.Duration, error) {
	return 0, errors.New("CPU time is read from /proc, on Linux only")
}
