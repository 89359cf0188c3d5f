package main

import (
	"os"
	"strings"
	"testing"
)

var sdkLogLevels = []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"}

// unsetLogging removes every TF_LOG* variable for the test (t.Setenv
// restores them after it).
func unsetLogging(t *testing.T) {
	names := append([]string{}, sdkLogLevels...)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "TF_LOG") {
			names = append(names, name)
		}
	}
	for _, name := range names {
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}

// Without any TF_LOG setting the SDK's logs are turned off; with one they
// are left as the user asked.
func TestQuietUnlessLogging(t *testing.T) {
	unsetLogging(t)
	quietUnlessLogging()
	for _, name := range sdkLogLevels {
		if got := os.Getenv(name); got != "off" {
			t.Errorf("without TF_LOG, %s = %q, want off", name, got)
		}
	}

	unsetLogging(t)
	t.Setenv("TF_LOG", "debug")
	quietUnlessLogging()
	for _, name := range sdkLogLevels {
		if got, set := os.LookupEnv(name); set {
			t.Errorf("with TF_LOG=debug, %s was set to %q", name, got)
		}
	}
}
