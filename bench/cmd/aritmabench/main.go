// Command aritmabench runs the Aritma engine's benchmarks (make bench) and
// writes docs/benchmarks.md from what it measured.
//
//	aritmabench run -vault BIN -bin DIR [-stages a,b,c,d,e] [-quick]
//	aritmabench report -in bench/out/results.json
//
// run measures, in one run, every figure of docs/benchmarks.md: the
// in-process Go benchmarks (a), load through a real Vault against two
// floors and a ceiling probe with profiles (b), grants at the
// authorization server per rotation (c), growth with the number of roles
// (d) and lease growth (e). Targets are alternated round by round and
// figures are reported as ratios to a floor measured in the same rounds, so
// that a noisy, shared machine moves both sides of each ratio alike. It
// saves the raw results as JSON and renders the report from them; report
// renders it again from saved results.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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

// config is what run was asked to do.
type config struct {
	repo     string // repository root
	vaultBin string
	binDir   string // plugin builds and the engine's test binary
	outDir   string
	docPath  string
	stages   map[string]bool
	quick    bool
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: aritmabench run|report [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "run":
		run(os.Args[2:])
	case "report":
		report(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "aritmabench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

func run(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c config
	var stages string
	fs.StringVar(&c.repo, "repo", "..", "repository root")
	fs.StringVar(&c.vaultBin, "vault", "", "Vault binary (scripts/build-vault.sh prints it)")
	fs.StringVar(&c.binDir, "bin", "out/bin", "directory with the builds scripts/bench.sh made")
	fs.StringVar(&c.outDir, "out", "out", "directory for results.json, profiles and logs")
	fs.StringVar(&c.docPath, "doc", "", "write the report here (default <repo>/docs/benchmarks.md)")
	fs.StringVar(&stages, "stages", "a,b,c,d,e", "stages to run: a in-process, b load, c upstream, d growth, e leases")
	fs.BoolVar(&c.quick, "quick", false, "shorter runs, for trying the harness (figures not for publishing)")
	_ = fs.Parse(args)
	if c.vaultBin == "" {
		fatalf("-vault is required")
	}
	var err error
	for _, p := range []*string{&c.repo, &c.binDir, &c.outDir} {
		if *p, err = filepath.Abs(*p); err != nil {
			fatalf("%v", err)
		}
	}
	if c.docPath == "" {
		c.docPath = filepath.Join(c.repo, "docs", "benchmarks.md")
	}
	c.stages = map[string]bool{}
	for _, s := range strings.Split(stages, ",") {
		c.stages[strings.TrimSpace(s)] = true
	}
	if err := os.MkdirAll(filepath.Join(c.outDir, "profiles"), 0o755); err != nil {
		fatalf("%v", err)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fatalf("interrupted")
	}()

	start := time.Now()
	res := &results{
		Date:    start.UTC().Format("2006-01-02 15:04 UTC"),
		Machine: describeMachine(),
		Go:      runtime.Version(),
		Quick:   c.quick,
	}
	if out, err := runCmd(c.vaultBin, "version"); err == nil {
		res.Vault, _, _ = strings.Cut(strings.TrimSpace(out), ",") // "Vault v1.21.1, built ..."
	}
	// scripts/bench.sh passes when make bench started, so that the total
	// includes its builds.
	if t, err := strconv.ParseInt(os.Getenv("BENCH_STARTED"), 10, 64); err == nil {
		res.BuildSeconds = start.Sub(time.Unix(t, 0)).Seconds()
	}

	if c.stages["a"] {
		res.InProcess = stageInProcess(c)
		save(c, res)
	}
	if c.stages["b"] || c.stages["c"] || c.stages["d"] || c.stages["e"] {
		env := setupDev(c)
		if c.stages["b"] {
			res.Load = stageLoad(c, env)
			save(c, res)
		}
		waitAgents := func() {}
		if c.stages["c"] {
			res.Upstream = stageUpstream(c, env)
			save(c, res)
			waitAgents = startLongAgents(c, env, res.Upstream)
		}
		if c.stages["d"] {
			res.Growth = stageGrowth(c, env)
			save(c, res)
		}
		waitAgents()
		env.v.proc.stop() // stage e has a Vault of its own
		if c.stages["e"] {
			res.Leases = stageLeases(c, env)
		}
		stopAll()
	}
	// The plugin copies and Vault's data are large (hundreds of MB) and
	// measured already; the logs, profiles and results stay.
	for _, d := range []string{"dev/plugins", "leases/plugins", "leases/data"} {
		_ = os.RemoveAll(filepath.Join(c.outDir, d))
	}
	res.Seconds = time.Since(start).Seconds()
	save(c, res)
	if err := writeReport(res, c.docPath); err != nil {
		fatalf("writing the report: %v", err)
	}
	logf("done in %s; results in %s, report in %s", time.Since(start).Round(time.Second),
		filepath.Join(c.outDir, "results.json"), c.docPath)
}

func save(c config, res *results) {
	raw, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(c.outDir, "results.json"), raw, 0o644); err != nil {
		fatalf("saving results: %v", err)
	}
}

func report(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "out/results.json", "results of a run")
	doc := fs.String("doc", "../docs/benchmarks.md", "report to write")
	_ = fs.Parse(args)
	raw, err := os.ReadFile(*in)
	if err != nil {
		fatalf("%v", err)
	}
	var res results
	if err := json.Unmarshal(raw, &res); err != nil {
		fatalf("%s: %v", *in, err)
	}
	if err := writeReport(&res, *doc); err != nil {
		fatalf("%v", err)
	}
}

type machine struct {
	Cores    int    `json:"cores"`
	MemoryGB string `json:"memory"`
	CPU      string `json:"cpu"`
	Kernel   string `json:"kernel"`
	LoadAvg  string `json:"load_avg_at_start"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU()}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(raw), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemoryGB = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(raw))
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
	return m
}
