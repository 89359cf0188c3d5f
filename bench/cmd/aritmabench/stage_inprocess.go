package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// inProcessResults is stage a: the Go benchmarks of aritma/bench_test.go,
// run from the engine's test binary in alternating rounds.
type inProcessResults struct {
	Rounds     int            `json:"rounds"`
	BenchTime  string         `json:"bench_time"`
	Benchmarks []benchSummary `json:"benchmarks"`
	Ratios     []benchRatio   `json:"ratios"`
}

// benchSummary holds the medians over a benchmark's runs of every metric
// it reported (ns/op, B/op, allocs/op and its own).
type benchSummary struct {
	Name    string               `json:"name"`
	Runs    int                  `json:"runs"`
	Metrics map[string]float64   `json:"metrics"`
	Samples []map[string]float64 `json:"samples"`
}

// benchRatio compares two benchmarks run in the same rounds: the median of
// the per-round ratios of ns/op, and the allocations of each.
type benchRatio struct {
	Name     string    `json:"name"`
	Num, Den string    `json:"-"`
	Of       string    `json:"of"`
	To       string    `json:"to"`
	Ratio    float64   `json:"ratio"`
	PerRound []float64 `json:"per_round"`
	AllocsOf float64   `json:"allocs_of"`
	AllocsTo float64   `json:"allocs_to"`
}

const (
	bFloor         = "Floor_ConfigRead"
	bProbe         = "Probe_ConstantLease"
	bHit           = "TokenRead_CacheHit"
	bHandler       = "TokenRead_CacheHitHandler"
	bFloorParallel = "Floor_ConfigReadParallel"
	bHitParallel   = "TokenRead_CacheHitParallel"
	bGrant         = "TokenRead_Grant"
	bCoalesced     = "TokenRead_Coalesced"
	bIdle          = "TokenRead_OtherRoleWhileOneHangs/A=idle"
	bHanging       = "TokenRead_OtherRoleWhileOneHangs/A=hanging"
)

func stageInProcess(c config) *inProcessResults {
	res := &inProcessResults{Rounds: 5, BenchTime: "400ms"}
	if c.quick {
		res.Rounds, res.BenchTime = 2, "100ms"
	}
	testBin := filepath.Join(c.binDir, "aritma.test")
	samples := map[string][]map[string]float64{}
	runBench := func(pattern, benchtime string) {
		out, err := exec.Command(testBin, "-test.run", "^$", "-test.bench", pattern,
			"-test.benchmem", "-test.benchtime", benchtime, "-test.count", "1").CombinedOutput()
		if err != nil {
			fatalf("stage a: %s: %v\n%s", pattern, err, out)
		}
		for name, m := range parseBenchOutput(string(out)) {
			samples[name] = append(samples[name], m)
		}
	}
	groups := []struct {
		names  []string
		rounds int
	}{
		{[]string{bFloor, bProbe, bHit, bHandler}, res.Rounds},
		{[]string{bFloorParallel, bHitParallel}, max(2, res.Rounds-2)},
		{[]string{bIdle, bHanging}, max(2, res.Rounds-2)},
	}
	for _, g := range groups {
		logf("stage a: %s, %d alternating rounds", strings.Join(g.names, " / "), g.rounds)
		for round := 0; round < g.rounds; round++ {
			for i := range g.names {
				name := g.names[i]
				if round%2 == 1 {
					name = g.names[len(g.names)-1-i] // every other round in reverse order
				}
				runBench(benchPattern(name), res.BenchTime)
			}
		}
	}
	logf("stage a: grant (cold path) and coalesced readers")
	runBench(benchPattern(bGrant), "1s")
	runBench("^Benchmark"+bCoalesced+"$", "1s")

	for _, name := range []string{bFloor, bProbe, bHit, bHandler, bFloorParallel, bHitParallel, bGrant,
		bCoalesced + "/readers=1", bCoalesced + "/readers=64", bCoalesced + "/readers=1024", bIdle, bHanging} {
		s := benchSummary{Name: name, Runs: len(samples[name]), Samples: samples[name], Metrics: map[string]float64{}}
		units := map[string][]float64{}
		for _, m := range samples[name] {
			for u, v := range m {
				units[u] = append(units[u], v)
			}
		}
		for u, vs := range units {
			s.Metrics[u] = median(vs)
		}
		res.Benchmarks = append(res.Benchmarks, s)
	}
	for _, r := range []struct{ name, num, den string }{
		{"cache hit vs framework floor", bHit, bFloor},
		{"cache hit vs in-process probe (constant leased secret)", bHit, bProbe},
		{"in-process probe vs framework floor", bProbe, bFloor},
		{"engine handler alone vs framework floor", bHandler, bFloor},
		{"cache hit vs floor, all cores", bHitParallel, bFloorParallel},
		{"role B while role A's grant hangs vs A idle", bHanging, bIdle},
	} {
		br := benchRatio{Name: r.name, Of: r.num, To: r.den}
		num, den := samples[r.num], samples[r.den]
		for i := 0; i < min(len(num), len(den)); i++ {
			br.PerRound = append(br.PerRound, num[i]["ns/op"]/den[i]["ns/op"])
		}
		br.Ratio = median(br.PerRound)
		br.AllocsOf = res.metric(r.num, "allocs/op")
		br.AllocsTo = res.metric(r.den, "allocs/op")
		res.Ratios = append(res.Ratios, br)
		logf("  %s: x%.2f (rounds %s), allocs %.0f vs %.0f", r.name, br.Ratio, fmtList(br.PerRound, "%.2f"), br.AllocsOf, br.AllocsTo)
	}
	return res
}

func (r *inProcessResults) metric(name, unit string) float64 {
	for _, b := range r.Benchmarks {
		if b.Name == name {
			return b.Metrics[unit]
		}
	}
	return 0
}

func (r *inProcessResults) ratio(name string) *benchRatio {
	for i := range r.Ratios {
		if r.Ratios[i].Name == name {
			return &r.Ratios[i]
		}
	}
	return nil
}

// benchPattern selects exactly one benchmark (or sub-benchmark) by name.
func benchPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + p + "$"
	}
	parts[0] = "^Benchmark" + strings.TrimPrefix(parts[0], "^")
	return strings.Join(parts, "/")
}

// parseBenchOutput reads `go test -bench` lines:
//
//	BenchmarkName/sub-2   N   123 ns/op   45 B/op   6 allocs/op   1.0 grants/op
func parseBenchOutput(out string) map[string]map[string]float64 {
	res := map[string]map[string]float64{}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(fields[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			m[fields[i+1]] = v
		}
		res[name] = m
	}
	return res
}

func fmtList(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}
