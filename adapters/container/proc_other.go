//go:build !unix

package container

import (
	"os"
	"os/exec"
)

// ownProcessGroup does nothing where there are no Unix process groups.
func ownProcessGroup(*exec.Cmd) {}

// terminate kills the program: there is no SIGTERM to send here.
func terminate(p *os.Process) error { return p.Kill() }

// kill kills the program.
func kill(p *os.Process) error { return p.Kill() }
