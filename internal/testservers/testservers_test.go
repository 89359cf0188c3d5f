package testservers

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The documented agent configuration, pointed elsewhere, keeps nothing of
// the example's addresses and paths.
func TestAgentConfig_FromTheDocumentedExample(t *testing.T) {
	config, err := AgentConfig(filepath.Join("..", ".."), "127.0.0.1:8200", "/tmp/x/token", "aritma/token/app", "/tmp/x/out")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"http://127.0.0.1:8200"`, `"/tmp/x/token"`, `secret \"aritma/token/app\"`, `"/tmp/x/out"`} {
		if !strings.Contains(config, want) {
			t.Errorf("the configuration lacks %s:\n%s", want, config)
		}
	}
	var settings []string // the lines that are not comments
	for _, line := range strings.Split(config, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			settings = append(settings, line)
		}
	}
	for _, gone := range []string{"vault.example.com", "/run/payments", "aritma/token/payments"} {
		if strings.Contains(strings.Join(settings, "\n"), gone) {
			t.Errorf("the configuration still sets %s", gone)
		}
	}
}

// Stop ends the process and its children, by process group.
func TestProcess_StopEndsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p, err := Start(filepath.Join(dir, "log"), nil, nil, "sh", "-c", "sleep 60 & echo $! >"+pidFile+"; wait")
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if err := WaitFor(5*time.Second, "the child's pid", func() bool {
		raw, _ := os.ReadFile(pidFile)
		_, err := fmt.Sscan(strings.TrimSpace(string(raw)), &child)
		return err == nil && child > 0
	}); err != nil {
		t.Fatal(err)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("the process has not exited after Stop")
	}
	if err := WaitFor(5*time.Second, "the child to end", func() bool {
		return syscall.Kill(child, 0) != nil
	}); err != nil {
		t.Error(err)
	}
}

func TestWaitFor_NamesWhatItWaitedFor(t *testing.T) {
	err := WaitFor(200*time.Millisecond, "the moon", func() bool { return false })
	if err == nil || err.Error() != "gave up waiting 200ms for the moon" {
		t.Errorf("error = %v", err)
	}
}
