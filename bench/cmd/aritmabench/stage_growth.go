package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// growthResults is stage d: plugin memory and read latency as the number
// of roles (each with a cached token) grows.
type growthResults struct {
	Conc         int           `json:"conc"`
	Rounds       int           `json:"rounds"`
	RoundSecs    float64       `json:"round_secs"`
	Baseline     memSample     `json:"baseline"`
	Levels       []growthLevel `json:"levels"`
	BytesPerRSS  float64       `json:"rss_bytes_per_role"`
	BytesPerHeap float64       `json:"heap_bytes_per_role"`
}

type memSample struct {
	RSS       int64 `json:"rss"`
	HeapInuse int64 `json:"heap_inuse"`
}

type growthLevel struct {
	Roles         int           `json:"roles"`
	CreateSecs    float64       `json:"create_secs"`
	FirstReadSecs float64       `json:"first_read_secs"`
	Mem           memSample     `json:"mem"`
	ListMs        float64       `json:"list_ms"`
	ListKeys      int           `json:"list_keys"`
	Runs          []roundResult `json:"runs"`
	Token         loadSummary   `json:"token"`
	KV            loadSummary   `json:"kv"`
}

func stageGrowth(c config, e *devEnv) *growthResults {
	res := &growthResults{Conc: 16, Rounds: 3, RoundSecs: 1.5}
	levels := []int{10, 1000, 10000}
	if c.quick {
		res.Rounds, res.RoundSecs = 2, 0.5
		levels = []int{10, 100, 1000}
	}
	v := e.v
	if err := v.mount("growth", growthPlugin, "", nil); err != nil {
		fatalf("%v", err)
	}
	v.mustWrite("growth/environments/bank", map[string]interface{}{"token_url": e.long.TokenEndpoint})
	pid, err := childByCommand(v.pid(), e.pluginPaths[growthPlugin])
	if err != nil {
		fatalf("stage d: %v", err)
	}
	measure := func() memSample {
		var m struct {
			HeapInuse int64 `json:"heap_inuse"`
		}
		var buf bytes.Buffer
		if err := pprofGet(e.pprofSocks[growthPlugin], "/debug/gc", &buf); err == nil {
			_ = json.Unmarshal(buf.Bytes(), &m)
		}
		rss, _ := rssBytes(pid)
		return memSample{RSS: rss, HeapInuse: m.HeapInuse}
	}
	res.Baseline = measure()
	logf("stage d: plugin pid %d, baseline RSS %.1f MiB, heap %.1f MiB", pid, mib(res.Baseline.RSS), mib(res.Baseline.HeapInuse))

	cl := e.clients["growth"]
	have := 0
	var names []string
	for _, n := range levels {
		lvl := growthLevel{Roles: n}
		logf("stage d: %d roles", n)
		var newNames []string
		for i := have; i < n; i++ {
			newNames = append(newNames, fmt.Sprintf("g%05d", i))
		}
		start := time.Now()
		if err := parallel(16, newNames, func(name string) error {
			_, err := v.client.Logical().Write("growth/roles/"+name, map[string]interface{}{
				"environment": "bank", "client_id": cl.ID, "client_secret": cl.Secret, "scopes": "api",
			})
			return err
		}); err != nil {
			fatalf("stage d: writing roles: %v", err)
		}
		lvl.CreateSecs = time.Since(start).Seconds()
		start = time.Now()
		if err := parallel(16, newNames, func(name string) error {
			_, err := v.client.Logical().Read("growth/token/" + name)
			return err
		}); err != nil {
			fatalf("stage d: first reads: %v", err)
		}
		lvl.FirstReadSecs = time.Since(start).Seconds()
		names = append(names, newNames...)
		have = n
		e.revokeAll()

		var listTimes []float64
		for range 5 {
			start := time.Now()
			s, err := v.client.Logical().List("growth/roles")
			if err != nil {
				fatalf("stage d: list: %v", err)
			}
			listTimes = append(listTimes, float64(time.Since(start))/float64(time.Millisecond))
			if s != nil {
				lvl.ListKeys = len(s.Data["keys"].([]interface{}))
			}
		}
		lvl.ListMs = median(listTimes)

		paths := make([]string, len(names))
		for i, name := range names {
			paths[i] = "growth/token/" + name
		}
		targets := []target{
			{Name: "kv", Path: "kv/r"},
			{Name: "token", Paths: paths},
		}
		dur := time.Duration(res.RoundSecs * float64(time.Second))
		for _, t := range targets {
			runLoad(v.Addr, e.loadToken, t, res.Conc, dur/4, loadOpts{}) // warm-up
		}
		for round := 0; round < res.Rounds; round++ {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				r := runLoad(v.Addr, e.loadToken, t, res.Conc, dur, loadOpts{})
				r.Round = round
				lvl.Runs = append(lvl.Runs, r)
			}
			e.revokeAll()
		}
		lvl.Token = summarize(lvl.Runs, res.Conc, "token")
		lvl.KV = summarize(lvl.Runs, res.Conc, "kv")
		lvl.Mem = measure()
		logf("  created in %.1fs, first reads (grants) in %.1fs; RSS %.1f MiB, heap %.1f MiB; list %.1fms (%d keys)",
			lvl.CreateSecs, lvl.FirstReadSecs, mib(lvl.Mem.RSS), mib(lvl.Mem.HeapInuse), lvl.ListMs, lvl.ListKeys)
		logf("  token reads %0.f/s p50 %.2fms p99 %.2fms, x%.2f of KV", lvl.Token.ReadsPerSec, lvl.Token.P50Ms, lvl.Token.P99Ms, lvl.Token.VsKV)
		res.Levels = append(res.Levels, lvl)
	}
	first, last := res.Levels[0], res.Levels[len(res.Levels)-1]
	roles := float64(last.Roles - first.Roles)
	res.BytesPerRSS = float64(last.Mem.RSS-first.Mem.RSS) / roles
	res.BytesPerHeap = float64(last.Mem.HeapInuse-first.Mem.HeapInuse) / roles
	return res
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// parallel runs fn over items with n workers and returns the first error.
func parallel(n int, items []string, fn func(string) error) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				if err := fn(items[i]); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("%s: %w", items[i], err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
