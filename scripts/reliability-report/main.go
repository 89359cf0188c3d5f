// Command reliability-report turns the figures a reliability run recorded
// (JSON lines {"figure": name, "value": v}) into the README's reliability
// section, between its markers. Figures recorded more than once are summed.
//
//	go run ./scripts/reliability-report <figures.jsonl> README.md
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

const (
	startMarker = "<!-- reliability:start -->"
	endMarker   = "<!-- reliability:end -->"
)

// sections lists the figures in the order the README reports them.
var sections = []struct {
	title   string
	figures [][2]string // name, what it counts
}{
	{"Authorization-server faults (fake server, `aritma/faults_test.go`)", [][2]string{
		{"faults_tried", "faults tried"},
		{"faults_handled", "handled as specified (clear error and status, in time, no leak)"},
	}},
	{"Hostile input (`go test -fuzz`, `scripts/fuzz.sh`)", [][2]string{
		{"fuzz_targets", "fuzz targets"},
		{"fuzz_time_per_target", "time per target"},
		{"fuzz_inputs_executed", "inputs executed"},
		{"fuzz_crashes", "crashes"},
	}},
	{"Failover on a three-node raft cluster (`e2e/cluster_test.go`)", [][2]string{
		{"failover_reads_attempted", "reads attempted"},
		{"failover_reads_succeeded", "reads succeeded"},
		{"failover_unavailable_seconds", "seconds of unavailability"},
		{"failover_config_entries_lost", "config entries lost"},
	}},
	{"Load on a real Vault and OAuth server (`e2e/load_test.go`)", [][2]string{
		{"load_readers", "concurrent readers"},
		{"load_seconds", "seconds"},
		{"load_reads", "reads"},
		{"load_errors", "errors"},
		{"load_expired_tokens", "expired tokens handed out"},
		{"load_grants", "grants at the server"},
		{"load_rotations", "rotations (tokens handed out)"},
	}},
	{"Secret hygiene (Vault log and audit log, plugin and OAuth server logs, test output)", [][2]string{
		{"hygiene_bytes_scanned", "bytes of logs scanned"},
		{"hygiene_secrets_found", "secrets found in logs"},
		{"test_output_bytes_scanned", "bytes of test output scanned"},
		{"secrets_looked_for", "secrets looked for in the test output"},
		{"test_output_secrets_found", "secrets found in the test output"},
	}},
	{"Storage faults (`aritma/storage_faults_test.go`)", [][2]string{
		{"storage_faults_injected", "storage faults injected"},
		{"storage_faults_data_intact", "left stored data intact"},
	}},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: reliability-report <figures.jsonl> <README.md>")
		os.Exit(2)
	}
	figures, err := readFigures(os.Args[1])
	if err != nil {
		fail(err)
	}
	readme, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail(err)
	}
	text := string(readme)
	start, end := strings.Index(text, startMarker), strings.Index(text, endMarker)
	if start < 0 || end < start {
		fail(fmt.Errorf("%s has no %s ... %s section", os.Args[2], startMarker, endMarker))
	}
	section := render(figures)
	out := text[:start+len(startMarker)] + "\n" + section + text[end:]
	if err := os.WriteFile(os.Args[2], []byte(out), 0o644); err != nil {
		fail(err)
	}
	fmt.Print(section)
}

func readFigures(path string) (map[string]interface{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	figures := map[string]interface{}{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var line struct {
			Figure string      `json:"figure"`
			Value  interface{} `json:"value"`
		}
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		if n, ok := line.Value.(float64); ok {
			if prev, ok := figures[line.Figure].(float64); ok {
				n += prev
			}
			figures[line.Figure] = n
			continue
		}
		figures[line.Figure] = line.Value
	}
	return figures, scanner.Err()
}

func render(figures map[string]interface{}) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Figures from the last `make reliability` run, %s, on %s/%s with %d cores (written by `scripts/reliability.sh`; do not edit by hand).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	b.WriteString("| | figure | value |\n|---|---|---|\n")
	for _, s := range sections {
		for i, f := range s.figures {
			title := ""
			if i == 0 {
				title = "**" + s.title + "**"
			}
			value, ok := figures[f[0]]
			shown := "not measured in this run"
			if ok {
				shown = format(value)
			}
			fmt.Fprintf(&b, "| %s | %s | %s |\n", title, f[1], shown)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func format(v interface{}) string {
	if n, ok := v.(float64); ok {
		if n == float64(int64(n)) {
			return groupThousands(int64(n))
		}
		return fmt.Sprintf("%.1f", n)
	}
	return fmt.Sprint(v)
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "reliability-report:", err)
	os.Exit(1)
}
