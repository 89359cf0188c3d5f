package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Figures recorded more than once are summed; a figure not recorded says
// so instead of showing a number.
func TestReadFiguresAndRender(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.jsonl")
	lines := `{"figure":"hygiene_bytes_scanned","value":1000}
{"figure":"hygiene_bytes_scanned","value":2500}
{"figure":"fuzz_time_per_target","value":"20s"}
{"figure":"failover_stop_unavailable_seconds","value":0.6}
`
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	figures, err := readFigures(path)
	if err != nil {
		t.Fatal(err)
	}
	out := render(figures, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), "commit 0123456789ab", "2")
	for _, want := range []string{
		"| bytes of logs scanned | 3,500 |",
		"| time per target | 20s |",
		"longest time without a successful read, s (bound 5) | 0.6 |",
		"| storage faults injected | not measured in this run |",
		"From the `make reliability` run of 2026-12-01 10:00 UTC on commit 0123456789ab, which passed on try 2,",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}

// The committed docs/reliability.md is a report of this program: its
// header, and a row for every figure it defines, each with a value.
func TestCommittedReportIsComplete(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "reliability.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if !strings.HasPrefix(doc, header) {
		t.Error("docs/reliability.md does not start with the generated header")
	}
	for _, s := range sections {
		for _, f := range s.figures {
			if !strings.Contains(doc, "| "+f[1]+" | ") {
				t.Errorf("docs/reliability.md has no row %q", f[1])
			}
		}
	}
	if strings.Contains(doc, "not measured in this run") {
		t.Error("docs/reliability.md comes from a partial run")
	}
}
