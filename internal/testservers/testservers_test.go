package testservers

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
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

// Each form of a secret is found in text that carries it that way.
func TestSecretForms_FindEncodedSecrets(t *testing.T) {
	secret := "s3cret/+=&\"é-7f1c9e2a"
	pem := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"
	jsonPEM, _ := json.Marshal(map[string]string{"key": pem})
	for name, tc := range map[string]struct{ secret, text string }{
		"plain":              {secret, "error: bad secret " + secret},
		"form body":          {secret, "client_id=c&client_secret=" + url.QueryEscape(secret)},
		"JSON-escaped PEM":   {pem, string(jsonPEM)},
		"Basic header":       {secret, "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("client:"+secret))},
		"Basic, other align": {secret, "Basic " + base64.StdEncoding.EncodeToString([]byte("cl:"+secret))},
		"base64url":          {secret, base64.URLEncoding.EncodeToString([]byte("x" + secret + "yz"))},
	} {
		t.Run(name, func(t *testing.T) {
			found := false
			for _, form := range SecretForms(tc.secret) {
				found = found || strings.Contains(tc.text, form)
			}
			if !found {
				t.Errorf("no form of the secret found in %q", tc.text)
			}
		})
	}
	for _, form := range SecretForms(secret) {
		if strings.Contains("Authorization: Basic "+base64.StdEncoding.EncodeToString([]byte("client:other-secret-value")), form) {
			t.Errorf("form %q matches a header without the secret", form)
		}
	}
}
