package main

import (
	"bytes"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"
)

// The benchmarks of aritma/bench_test.go that the targets use.
const (
	bFloor     = "Floor_ConfigRead"
	bHit       = "TokenRead_CacheHit"
	bHandler   = "TokenRead_CacheHitHandler"
	bCoalesced = "TokenRead_Coalesced"
	// A bank customer's credential: the cache hit, and readers at an
	// expired token sharing one refresh.
	bCredHit       = "CredentialRead_CacheHit"
	bCredCoalesced = "CredentialRead_Coalesced"
)

// inProcessResults is the in-process stage: the raw samples of each
// benchmark and unit, as the test binary printed them (its full output is
// also in out/inprocess.txt, for benchstat).
type inProcessResults struct {
	Rounds         int                             `json:"rounds"`
	Count          int                             `json:"count"` // -count per round
	BenchTime      string                          `json:"bench_time"`
	CoalescedCount int                             `json:"coalesced_count"`
	CoalescedTime  string                          `json:"coalesced_time"`
	Samples        map[string]map[string][]float64 `json:"samples"` // benchmark → unit → values
}

func stageInProcess(c config) *inProcessResults {
	r := &inProcessResults{Rounds: 5, Count: 2, BenchTime: "300ms", CoalescedCount: 5, CoalescedTime: "50x"}
	if c.quick {
		r.Rounds, r.Count, r.BenchTime, r.CoalescedCount, r.CoalescedTime = 2, 2, "50ms", 2, "10x"
	}
	var out bytes.Buffer
	bench := func(pattern, benchtime string, count int) {
		cmd := exec.Command(filepath.Join(c.binDir, "aritma.test"), "-test.run", "^$", "-test.bench", pattern,
			"-test.benchmem", "-test.benchtime", benchtime, "-test.count", strconv.Itoa(count))
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			fatalf("in process: %s: %v\n%s", pattern, err, out.String())
		}
	}
	// Rounds of one run each, rather than one long run, so that a busy
	// moment of the machine falls on the floor and the cache hit alike.
	for round := range r.Rounds {
		logf("in process: round %d of %d", round+1, r.Rounds)
		bench("^Benchmark("+bFloor+"|"+bHit+"|"+bHandler+"|"+bCredHit+")$", r.BenchTime, r.Count)
	}
	logf("in process: coalesced readers")
	bench("^Benchmark("+bCoalesced+"|"+bCredCoalesced+")$", r.CoalescedTime, r.CoalescedCount)
	_ = os.WriteFile(filepath.Join(c.outDir, "inprocess.txt"), out.Bytes(), 0o644)
	var err error
	r.Samples, err = parseBench(&out)
	check(err, "in process")
	return r
}

// parseBench reads `go test -bench` output into benchmark → unit → values,
// in the units the benchmarks reported (ns/op rather than benchfmt's tidied
// sec/op), without the GOMAXPROCS suffix.
func parseBench(r io.Reader) (map[string]map[string][]float64, error) {
	out := map[string]map[string][]float64{}
	br := benchfmt.NewReader(r, "go test -bench")
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // a line benchfmt could not read
		}
		base, parts := res.Name.Parts()
		name := string(base)
		for _, p := range parts {
			if p[0] == '/' {
				name += string(p)
			}
		}
		if out[name] == nil {
			out[name] = map[string][]float64{}
		}
		for _, v := range res.Values {
			if v.OrigUnit != "" {
				v.Unit, v.Value = v.OrigUnit, v.OrigValue
			}
			out[name][v.Unit] = append(out[name][v.Unit], v.Value)
		}
	}
	return out, br.Err()
}

// summarize is the median of xs with its 95% confidence interval, which is
// infinite when there are too few values; NaN for no values.
func summarize(xs []float64) benchmath.Summary {
	if len(xs) == 0 {
		return benchmath.Summary{Center: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	return benchmath.AssumeNothing.Summary(benchmath.NewSample(slices.Clone(xs), &benchmath.DefaultThresholds), 0.95)
}

// median of a benchmark's unit in r (NaN if it was not measured).
func (r *inProcessResults) median(bench, unit string) float64 {
	return summarize(r.Samples[bench][unit]).Center
}
