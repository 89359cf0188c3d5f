// Package testservers starts the real servers that the end-to-end tests and
// the benchmarks use — Vault (a dev server, one with file storage, a raft
// cluster), the OAuth server (oidc-provider, e2e/oauthserver), Vault Agent —
// on 127.0.0.1, and stops them by process group. Every function returns an
// error; the e2e tests wrap them with t.Fatal, the benchmarks use them
// directly.
package testservers

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is a server that was started; Stop ends it and its children
// (the plugin processes Vault starts) by process group.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

// Start runs name with args in a process group of its own, with its output
// in logPath (stdout to stdout instead, if given) and env added to this
// process's environment.
func Start(logPath string, stdout io.Writer, env []string, name string, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
		logFile.Close()
		if c, ok := stdout.(io.Closer); ok {
			c.Close()
		}
	}()
	return p, nil
}

// Pid is the process's ID, which is also its process group's.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM to the process group, then SIGKILL after 15 seconds,
// and then to whatever is left in the group (plugins outliving Vault).
func (p *Process) Stop() {
	pgid := p.Pid()
	select {
	case <-p.exited:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// Kill crashes the process and its group at once (SIGKILL), as a power
// loss or an OOM kill would, and waits until it has exited.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.exited
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is 127.0.0.1 with a FreePort.
func FreeAddr() (string, error) {
	port, err := FreePort()
	return fmt.Sprintf("127.0.0.1:%d", port), err
}

// WaitFor polls ok every 100 ms until it holds, or fails after timeout
// naming what it waited for.
func WaitFor(timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting %s for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// Tail returns the last n lines of a log, headed by its name, for failure
// messages. The servers' logs hold no secrets (the e2e tests assert that).
func Tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + filepath.Base(path) + " ---\n" + strings.Join(lines, "\n")
}
