package aritma

import (
	"testing"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/figures"
)

// recordFigure logs a figure and records it for the README's reliability
// section (scripts/reliability.sh).
func recordFigure(t *testing.T, name string, value interface{}) {
	t.Helper()
	t.Logf("figure %s = %v", name, value)
	if err := figures.Record(name, value); err != nil {
		t.Errorf("recording figure %s: %v", name, err)
	}
}
