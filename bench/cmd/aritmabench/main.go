// Command aritmabench measures the targets of docs/benchmarks.md in one run
// and writes that file's tables from what it measured (make bench):
//
//	aritmabench run -repo ROOT -vault BIN -tofu BIN -tf-mirror DIR -bin DIR -out DIR [-stages inprocess,load,grants,growth,declarative] [-quick]
//	aritmabench report [-in out/results.json] [-doc ../docs/benchmarks.md]
//
// The machine is shared and noisy, so every comparison is a ratio of figures
// taken in the same run, in alternating rounds. run saves the raw results
// as JSON; report renders the tables again from saved results.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// results is everything one run measured; the tables are rendered from it
// alone.
type results struct {
	Date      string            `json:"date"`
	Commit    string            `json:"commit"`  // what was measured
	Machine   []string          `json:"machine"` // "key: value" lines
	Quick     bool              `json:"quick"`
	Seconds   float64           `json:"seconds"`
	InProcess *inProcessResults `json:"in_process,omitempty"`
	Load      *loadResults      `json:"load,omitempty"`
	Grants    []grantRun        `json:"grants,omitempty"`
	Growth    *growthResults    `json:"growth,omitempty"`
	// Declarative is tofu with the provider against vault_generic_endpoint.
	Declarative *declarativeResults `json:"declarative,omitempty"`
}

// config is what run was asked to do.
type config struct {
	repo, vaultBin, binDir, outDir, docPath string
	tofuBin, tfMirror                       string // OpenTofu and the Vault provider's mirror
	stages                                  map[string]bool
	quick                                   bool
}

var allStages = []string{"inprocess", "load", "grants", "growth", "declarative"}

// stops are run, newest first, on exit or on a fatal error, so that no
// server outlives the run.
var stops []func()

func stopAll() {
	for len(stops) > 0 {
		stops[len(stops)-1]()
		stops = stops[:len(stops)-1]
	}
}

func fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "aritmabench: "+format+"\n", args...)
	stopAll()
	os.Exit(1)
}

func logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]interface{}{time.Now().Format("15:04:05")}, args...)...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func main() {
	switch cmd := append(os.Args, "")[1]; cmd {
	case "run":
		run(os.Args[2:])
	case "report":
		report(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: aritmabench run|report [flags]")
		os.Exit(2)
	}
}

func run(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c config
	fs.StringVar(&c.repo, "repo", "..", "repository root")
	fs.StringVar(&c.vaultBin, "vault", "", "Vault binary (scripts/build-vault.sh prints it)")
	fs.StringVar(&c.tofuBin, "tofu", "", "OpenTofu binary (scripts/build-tofu.sh prints it), for the declarative stage")
	fs.StringVar(&c.tfMirror, "tf-mirror", "", "the Vault provider's mirror (scripts/build-terraform-provider-vault.sh prints it)")
	fs.StringVar(&c.binDir, "bin", "out/bin", "directory with aritma.test and probe (scripts/bench.sh builds them)")
	fs.StringVar(&c.outDir, "out", "out", "directory for results.json and the servers' logs")
	fs.StringVar(&c.docPath, "doc", "", "report to update (default <repo>/docs/benchmarks.md)")
	stages := fs.String("stages", strings.Join(allStages, ","), "stages to run, of "+strings.Join(allStages, ","))
	fs.BoolVar(&c.quick, "quick", false, "short runs, for trying the harness (figures not for publishing)")
	_ = fs.Parse(args)
	if c.vaultBin == "" {
		fatalf("-vault is required")
	}
	if strings.Contains(","+*stages+",", ",declarative,") && (c.tofuBin == "" || c.tfMirror == "") {
		fatalf("the declarative stage needs -tofu and -tf-mirror")
	}
	for _, p := range []*string{&c.repo, &c.binDir, &c.outDir} {
		*p, _ = filepath.Abs(*p) // fails only without a working directory
	}
	if c.docPath == "" {
		c.docPath = filepath.Join(c.repo, "docs", "benchmarks.md")
	}
	c.stages = map[string]bool{}
	for _, s := range strings.Split(*stages, ",") {
		if !slices.Contains(allStages, s) {
			fatalf("unknown stage %q (stages: %s)", s, strings.Join(allStages, ","))
		}
		c.stages[s] = true
	}
	check(os.MkdirAll(c.outDir, 0o755), "run")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fatalf("interrupted")
	}()

	start := time.Now()
	res := &results{Date: start.UTC().Format("2006-01-02 15:04 UTC"), Commit: describeCommit(c.repo),
		Machine: describeMachine(c.vaultBin), Quick: c.quick}
	if c.stages["inprocess"] {
		res.InProcess = stageInProcess(c)
		save(c, res)
	}
	if c.stages["load"] || c.stages["grants"] || c.stages["growth"] || c.stages["declarative"] {
		e := setup(c)
		if c.stages["load"] {
			res.Load = stageLoad(c, e)
			save(c, res)
		}
		if c.stages["grants"] {
			res.Grants = stageGrants(c, e)
			save(c, res)
		}
		if c.stages["growth"] {
			res.Growth = stageGrowth(c, e)
			save(c, res)
		}
		// Last: its audit device would slow every stage after it.
		if c.stages["declarative"] {
			res.Declarative = stageDeclarative(c, e)
		}
		stopAll()
		_ = os.RemoveAll(filepath.Join(c.outDir, "run", "vault", "plugins")) // copies of the builds
	}
	res.Seconds = time.Since(start).Seconds()
	save(c, res)
	check(updateDoc(c.docPath, res), "writing the report")
	logf("done in %s; results in %s, tables in %s", time.Since(start).Round(time.Second),
		filepath.Join(c.outDir, "results.json"), c.docPath)
}

func save(c config, res *results) {
	raw, err := json.MarshalIndent(res, "", "  ")
	check(errors.Join(err, os.WriteFile(filepath.Join(c.outDir, "results.json"), raw, 0o644)), "saving results")
}

func report(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "out/results.json", "results of a run")
	doc := fs.String("doc", "../docs/benchmarks.md", "report to update")
	_ = fs.Parse(args)
	raw, err := os.ReadFile(*in)
	check(err, "report")
	var res results
	check(json.Unmarshal(raw, &res), *in)
	check(updateDoc(*doc, &res), "report")
}

// describeCommit names the checkout measured: its commit, and whether
// tracked files differed from it.
func describeCommit(repo string) string {
	rev, err := exec.Command("git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	name := "commit " + strings.TrimSpace(string(rev))
	if exec.Command("git", "-C", repo, "diff", "--quiet", "HEAD", "--", ".", ":!docs/benchmarks.md").Run() != nil {
		name += " with uncommitted changes"
	}
	return name
}

// describeMachine is the machine table's rows, from /proc and the tools.
func describeMachine(vaultBin string) []string {
	field := func(file, key string) string {
		raw, _ := os.ReadFile(file)
		_, v, _ := strings.Cut(string(raw), key)
		v, _, _ = strings.Cut(strings.TrimLeft(v, " \t:"), "\n")
		return v
	}
	var kb float64
	fmt.Sscanf(field("/proc/meminfo", "MemTotal"), "%f", &kb)
	load := strings.Fields(field("/proc/loadavg", "") + "? ? ?")[:3]
	out, _ := exec.Command(vaultBin, "version").Output()
	vault, _, _ := strings.Cut(strings.TrimSpace(string(out)), ",") // "Vault v1.21.1, built ..."
	return []string{fmt.Sprintf("cores: %d", runtime.NumCPU()), "CPU: " + field("/proc/cpuinfo", "model name"),
		fmt.Sprintf("memory: %.1f GiB", kb/(1<<20)), "load average when the run started: " + strings.Join(load, " "),
		"Vault: " + vault, "Go: " + runtime.Version()}
}
