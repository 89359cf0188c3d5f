package aritma

import (
	"encoding/json"
	"os"
	"testing"
)

// recordFigure appends a figure for the README's reliability section to the
// file named by ARITMA_FIGURES (scripts/reliability-report.sh collects them);
// without it, figures are only logged.
func recordFigure(t *testing.T, name string, value interface{}) {
	t.Helper()
	t.Logf("figure %s = %v", name, value)
	path := os.Getenv("ARITMA_FIGURES")
	if path == "" {
		return
	}
	line, _ := json.Marshal(map[string]interface{}{"figure": name, "value": value})
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Errorf("recording figure %s: %v", name, err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(line, '\n'))
}
