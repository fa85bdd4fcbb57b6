//go:build unix

package container

import (
	"os"
	"os/exec"
	"syscall"
)

// ownProcessGroup makes the program the leader of a new process group, so that stopping it also
// stops whatever it started.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminate sends SIGTERM to the program's process group.
func terminate(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGTERM) }

// kill sends SIGKILL to the program's process group. It fails with ESRCH once nothing of the group
// is left.
func kill(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGKILL) }
