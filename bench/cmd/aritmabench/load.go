package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// target is one Vault path the load tool hits. Paths picks, per request,
// one of several paths (reads spread over many roles); otherwise Path.
type target struct {
	Name   string // short key: kv, ssh, probe, aritma
	Label  string // for the report
	Method string
	Path   string
	Paths  []string
	Body   []byte
}

// roundResult is one closed-loop load run: conc clients, each sending its
// next request when the last one is answered, for a fixed time.
type roundResult struct {
	Target      string  `json:"target"`
	Conc        int     `json:"conc"`
	Round       int     `json:"round"`
	Requests    int     `json:"requests"`
	OK          int     `json:"ok"`
	Non2xx      int     `json:"non_2xx"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	ReadsPerSec float64 `json:"reads_per_sec"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	Counted     bool    `json:"counted"`
	// CPU time Vault and the target's plugin process used during the run,
	// per successful read, in microseconds (0 where not measured).
	VaultCPUUs  float64 `json:"vault_cpu_us_per_read,omitempty"`
	PluginCPUUs float64 `json:"plugin_cpu_us_per_read,omitempty"`
	bodies      [][]byte
}

// loadOpts tune one run.
type loadOpts struct {
	keepBodies bool
	maxHits    uint64 // stop after this many requests (0: run for the whole duration)
}

// countPacer sends as fast as the workers allow, and stops after max hits.
type countPacer struct{ max uint64 }

func (p countPacer) Pace(_ time.Duration, hits uint64) (time.Duration, bool) {
	return 0, hits >= p.max
}

func (p countPacer) Rate(time.Duration) float64 { return 0 }

// runLoad drives conc vegeta workers at the unlimited rate (each worker
// sends as soon as its last answer came back) against addr for dur.
func runLoad(addr, token string, t target, conc int, dur time.Duration, opts loadOpts) roundResult {
	header := http.Header{}
	if token != "" {
		header.Set("X-Vault-Token", token)
	}
	method := t.Method
	if method == "" {
		method = http.MethodGet
	}
	base := "http://" + addr + "/v1/"
	var targeter vegeta.Targeter
	if len(t.Paths) > 0 {
		targeter = func(tgt *vegeta.Target) error {
			*tgt = vegeta.Target{Method: method, URL: base + t.Paths[rand.IntN(len(t.Paths))], Body: t.Body, Header: header}
			return nil
		}
	} else {
		targeter = vegeta.NewStaticTargeter(vegeta.Target{Method: method, URL: base + t.Path, Body: t.Body, Header: header})
	}
	maxBody := int64(0) // read and discard
	if opts.keepBodies {
		maxBody = -1
	}
	attacker := vegeta.NewAttacker(
		vegeta.Workers(uint64(conc)),
		vegeta.MaxWorkers(uint64(conc)),
		vegeta.Connections(conc),
		vegeta.MaxConnections(conc),
		vegeta.KeepAlive(true),
		vegeta.HTTP2(false),
		vegeta.Timeout(60*time.Second),
		vegeta.Redirects(vegeta.NoFollow),
		vegeta.MaxBody(maxBody),
	)
	var metrics vegeta.Metrics
	latencies := make([]time.Duration, 0, 4096)
	res := roundResult{Target: t.Name, Conc: conc}
	var pacer vegeta.Pacer = vegeta.ConstantPacer{}
	if opts.maxHits > 0 {
		pacer = countPacer{max: opts.maxHits}
	}
	for r := range attacker.Attack(targeter, pacer, dur, t.Name) {
		metrics.Add(r)
		latencies = append(latencies, r.Latency)
		if r.Code < 200 || r.Code > 299 {
			res.Non2xx++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%d %s %s", r.Code, r.Error, truncate(string(r.Body), 200))
			}
		} else if opts.keepBodies {
			res.bodies = append(res.bodies, r.Body)
		}
	}
	metrics.Close()
	res.Requests = int(metrics.Requests)
	res.OK = res.Requests - res.Non2xx
	res.Seconds = (metrics.Duration + metrics.Wait).Seconds()
	if res.Seconds > 0 {
		res.ReadsPerSec = float64(res.OK) / res.Seconds
	}
	slices.Sort(latencies)
	res.P50Ms = quantileMs(latencies, 0.50)
	res.P99Ms = quantileMs(latencies, 0.99)
	res.Counted = res.Non2xx == 0 && res.Requests > 0
	return res
}

// quantileMs is the exact q-quantile (nearest rank) of sorted latencies.
func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
