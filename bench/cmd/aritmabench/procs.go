package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server the benchmark started, in a process group of its own
// so that stopping it also stops the plugin processes Vault started.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// started holds every process still running, for stopAll.
var started []*process

func startProcess(logPath string, stdout io.Writer, env []string, name string, args ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: filepath.Base(name), cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		if c, ok := stdout.(io.Closer); ok {
			c.Close()
		}
		close(p.done)
	}()
	started = append(started, p)
	return p, nil
}

// stop sends SIGTERM to the process group, SIGKILL after 10 seconds, and
// SIGKILL to whatever is left in the group (plugin processes).
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
	default:
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	for i, q := range started {
		if q == p {
			started = append(started[:i], started[i+1:]...)
			break
		}
	}
}

// cleanups run after the processes are stopped.
var cleanups []func()

// stopAll stops every process still running, newest first, then cleans up.
func stopAll() {
	for len(started) > 0 {
		started[len(started)-1].stop()
	}
	for _, f := range cleanups {
		f()
	}
	cleanups = nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func mustFreeAddr() string {
	port, err := freePort()
	if err != nil {
		fatalf("no free port: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// rssBytes is the resident set size of a process, from /proc.
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest)
			kb, err := strconv.ParseInt(fields[0], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// childByCommand finds the child of parent whose executable is at path
// (Vault starts plugins as its children, by their path in the plugin
// directory).
func childByCommand(parent int, path string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut at the last ')'.
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if first, _, _ := strings.Cut(string(cmdline), "\x00"); first == path {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child of %d runs %s", parent, path)
}

// dirUsage adds up the sizes of the regular files under dir and counts them.
// Files that Vault removes during the walk are skipped; a missing dir is
// empty.
func dirUsage(dir string) (bytes int64, files int, err error) {
	err = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			bytes += info.Size()
			files++
		}
		return nil
	})
	return bytes, files, err
}

func tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "--- " + filepath.Base(path) + " ---\n" + strings.Join(lines, "\n")
}

// cpuSeconds is the CPU time (user and system) a process has used, from
// /proc/<pid>/stat, in seconds (clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// After the comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / 100, nil
}
