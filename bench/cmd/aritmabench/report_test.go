package main

import (
	"strings"
	"testing"
)

const benchOutput = `goos: linux
BenchmarkFloor_ConfigRead-2     	 1000	      1000 ns/op	    1280 B/op	       9 allocs/op
BenchmarkTokenRead_CacheHit-2   	 1000	      2100 ns/op	    1752 B/op	      14 allocs/op
BenchmarkTokenRead_CacheHitHandler-2	 1000	       600 ns/op	     192 B/op	      10 allocs/op
BenchmarkTokenRead_Coalesced/readers=64-2	20	    274479 ns/op	         1.000 grants/op	  150188 B/op	    1360 allocs/op
BenchmarkTokenRead_Coalesced/readers=1024-2	20	   3499008 ns/op	         2.000 grants/op	 2187022 B/op	   19057 allocs/op
PASS
`

func TestParseBench(t *testing.T) {
	got, err := parseBench(strings.NewReader(benchOutput + benchOutput))
	if err != nil {
		t.Fatal(err)
	}
	if v := got[bHit]["ns/op"]; len(v) != 2 || v[0] != 2100 {
		t.Errorf("cache hit ns/op = %v, want [2100 2100]", v)
	}
	if v := got[bCoalesced+"/readers=64"]["grants/op"]; len(v) != 2 || v[0] != 1 {
		t.Errorf("grants/op = %v (benchmarks: %v)", v, got)
	}
}

func inProcess(t *testing.T) *inProcessResults {
	s, err := parseBench(strings.NewReader(strings.Repeat(benchOutput, 6)))
	if err != nil {
		t.Fatal(err)
	}
	return &inProcessResults{Samples: s}
}

func loadRuns(aritma, probe float64) []roundResult {
	var runs []roundResult
	for round := range 6 {
		runs = append(runs, roundResult{Target: "probe", Conc: 16, Round: round, Requests: 100, ReadsPerSec: probe},
			roundResult{Target: "aritma", Conc: 16, Round: round, Requests: 100, ReadsPerSec: aritma})
	}
	// A round with an error answer is left out of the ratios.
	return append(runs, roundResult{Target: "aritma", Conc: 16, Round: 6, Requests: 100, Non2xx: 1, ReadsPerSec: 1},
		roundResult{Target: "probe", Conc: 16, Round: 6, Requests: 100, ReadsPerSec: probe})
}

func verdicts(res *results) map[string]string {
	got := map[string]string{}
	for _, r := range targetRows(res) {
		got[strings.Fields(r.target)[0]+" "+strings.Fields(r.target)[1]] = r.verdict + " " + r.measured
	}
	return got
}

func TestTargetVerdicts(t *testing.T) {
	res := &results{
		InProcess: inProcess(t),
		Load:      &loadResults{Runs: loadRuns(890, 1000)},
		Grants:    []grantRun{{Readers: 1, Tokens: 3, Grants: 3}, {Readers: 16, Tokens: 3, Grants: 4}},
		Growth: &growthResults{Conc: 16, Levels: []growthLevel{
			{Roles: 10, RSS: 1000, Heap: 500, Runs: []roundResult{{Target: "token", Conc: 16, Requests: 1, ReadsPerSec: 50}, {Target: "kv", Conc: 16, Requests: 1, ReadsPerSec: 100}}},
			{Roles: 110, RSS: 401000, Heap: 300500, Runs: []roundResult{{Target: "token", Conc: 16, Requests: 1, ReadsPerSec: 43}, {Target: "kv", Conc: 16, Requests: 1, ReadsPerSec: 100}},
				Scrapes: []scrapeResult{{Limit: 100000, Series: 990, Bytes: 80000, Millis: []float64{1200}, MedianMs: 1200}}},
		}},
	}
	want := map[string]string{
		"cache hit":    "not met ×2.10",
		"the engine's": "not met 10 allocs/op",
		"one grant":    "not met 64 readers: 1.00–1.00 in 6 samples; 1024 readers: 2.00–2.00 in 6 samples",
		"token reads":  "not met ×0.89 (×0.89–×0.89)",
		"exactly one":  "not met 1 reader: 3 grants for 3 tokens; 16 readers: 4 grants for 3 tokens",
		"read latency": "met ×0.50 at 10 roles, ×0.43 at 110: ×0.86",
		"memory per":   "reported 4,000 bytes of RSS, 3,000 bytes of Go heap",
		"a metrics":    "not met 1200 ms for 990 series (80,000 bytes)",
	}
	got := verdicts(res)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}

	res.Growth.Levels[1].Scrapes[0].MedianMs = 1000
	if got := verdicts(res)["a metrics"]; got != "met 1000 ms for 990 series (80,000 bytes)" {
		t.Errorf("a scrape at the target: %q", got)
	}
	res.Load.Runs = loadRuns(900, 1000)
	res.Grants = []grantRun{{Readers: 1, Tokens: 3, Grants: 3}}
	if got := verdicts(res); got["token reads"] != "met ×0.90 (×0.90–×0.90)" || got["exactly one"] != "met 1 reader: 3 grants for 3 tokens" {
		t.Errorf("at the targets: %q, %q", got["token reads"], got["exactly one"])
	}
	res.Grants = []grantRun{{Readers: 1, Tokens: 1, Grants: 1}} // no rotation seen: nothing shown
	if got := verdicts(res)["exactly one"]; !strings.HasPrefix(got, "not met") {
		t.Errorf("one token seen: %q", got)
	}
	for _, r := range targetRows(&results{}) {
		if r.measured != notMeasured || r.verdict != "" {
			t.Errorf("nothing measured, yet %+v", r)
		}
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "# T\nprose\n<!-- bench:a:start -->\nold\n<!-- bench:a:end -->\nmore prose\n"
	got, err := replaceBlock(doc, "a", "| new |\n")
	if want := "# T\nprose\n<!-- bench:a:start -->\n| new |\n<!-- bench:a:end -->\nmore prose\n"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{
		"no markers",
		"<!-- bench:a:end --> <!-- bench:a:start -->",
		"<!-- bench:a:start --> <!-- bench:a:end --> <!-- bench:a:start --> <!-- bench:a:end -->",
	} {
		if _, err := replaceBlock(bad, "a", "x"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFmtInt(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -3500: "-3,500"} {
		if got := fmtInt(in); got != want {
			t.Errorf("fmtInt(%v) = %q, want %q", in, got, want)
		}
	}
}
