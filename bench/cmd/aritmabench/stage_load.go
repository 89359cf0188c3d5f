package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// loadResults is stage b: reads per second and latency through Vault.
type loadResults struct {
	Targets       []targetInfo   `json:"targets"`
	Conc          []int          `json:"conc"`
	Rounds        int            `json:"rounds"`
	RoundSecs     float64        `json:"round_secs"`
	TokenBytes    int            `json:"token_bytes"`
	Runs          []roundResult  `json:"runs"`
	Summary       []loadSummary  `json:"summary"`
	LeasedReads   int            `json:"leased_reads"`
	RevokeSeconds float64        `json:"revoke_seconds"`
	Profiles      []profileEntry `json:"profiles"`
	ProfileSecs   int            `json:"profile_secs"`
	ProfileConc   int            `json:"profile_conc"`
}

type targetInfo struct {
	Name   string `json:"name"`
	Label  string `json:"label"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Leased bool   `json:"leased"`
}

type loadSummary struct {
	CPUUs       float64 `json:"cpu_us_per_read"` // Vault + plugin, median over rounds
	CPUVsProbe  float64 `json:"cpu_vs_probe"`    // median of per-round ratios
	Conc        int     `json:"conc"`
	Target      string  `json:"target"`
	Counted     int     `json:"counted"`
	Dropped     int     `json:"dropped"`
	ReadsPerSec float64 `json:"reads_per_sec"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	VsKV        float64 `json:"vs_kv"`
	VsProbe     float64 `json:"vs_probe"`
}

func loadTargets(e *devEnv) []target {
	sshBody, _ := json.Marshal(map[string]string{"ip": "127.0.0.1"})
	return []target{
		{Name: "kv", Label: "KV v1 read (no lease)", Path: "kv/r"},
		{Name: "ssh", Label: "SSH OTP (built-in, leased)", Method: http.MethodPost, Path: "ssh/creds/otp", Body: sshBody},
		{Name: "probe", Label: "ceiling probe (external plugin, constant leased secret)", Path: "probe/token/r"},
		{Name: "aritma", Label: "aritma/token (cache hit)", Path: "aritma/token/r"},
	}
}

func stageLoad(c config, e *devEnv) *loadResults {
	targets := loadTargets(e)
	res := &loadResults{Conc: []int{1, 16, 64}, Rounds: 6, RoundSecs: 1, TokenBytes: e.tokenLen, ProfileSecs: 8, ProfileConc: 16}
	if c.quick {
		res.Rounds, res.RoundSecs, res.ProfileSecs = 2, 0.5, 3
	}
	for _, t := range targets {
		method := t.Method
		if method == "" {
			method = http.MethodGet
		}
		res.Targets = append(res.Targets, targetInfo{Name: t.Name, Label: t.Label, Method: method, Path: t.Path, Leased: t.Name != "kv"})
	}
	dur := time.Duration(res.RoundSecs * float64(time.Second))
	// CPU used per read by Vault and by the plugin process serving the target.
	pluginPID := map[string]int{}
	for name, plugin := range map[string]string{"aritma": enginePlugin, "probe": probePlugin} {
		pid, err := childByCommand(e.v.pid(), e.pluginPaths[plugin])
		if err != nil {
			fatalf("stage b: %v", err)
		}
		pluginPID[name] = pid
	}
	measured := func(t target, conc int, d time.Duration) roundResult {
		v0, _ := cpuSeconds(e.v.pid())
		p0, _ := cpuSeconds(pluginPID[t.Name])
		r := runLoad(e.v.Addr, e.loadToken, t, conc, d, loadOpts{})
		v1, _ := cpuSeconds(e.v.pid())
		p1, _ := cpuSeconds(pluginPID[t.Name])
		if r.OK > 0 {
			r.VaultCPUUs = (v1 - v0) * 1e6 / float64(r.OK)
			if pluginPID[t.Name] != 0 {
				r.PluginCPUUs = (p1 - p0) * 1e6 / float64(r.OK)
			}
		}
		return r
	}
	for _, conc := range res.Conc {
		logf("stage b: %d concurrent clients, %d rounds of %s per target", conc, res.Rounds, dur)
		for _, t := range targets {
			runLoad(e.v.Addr, e.loadToken, t, conc, dur/4, loadOpts{}) // warm-up, not counted
		}
		res.RevokeSeconds += e.revokeAll()
		for round := 0; round < res.Rounds; round++ {
			for i := range targets {
				t := targets[(i+round)%len(targets)] // a different target goes first each round
				r := measured(t, conc, dur)
				r.Round = round
				if t.Name != "kv" {
					res.LeasedReads += r.OK
				}
				if !r.Counted {
					logf("  round %d %s: %d of %d answers not 2xx (first: %s); round not counted", round, t.Name, r.Non2xx, r.Requests, r.FirstError)
				}
				res.Runs = append(res.Runs, r)
			}
			res.RevokeSeconds += e.revokeAll()
		}
		for _, t := range targets {
			s := summarize(res.Runs, conc, t.Name)
			res.Summary = append(res.Summary, s)
			logf("  %-7s %8.0f reads/s  p50 %.2fms  p99 %.2fms  x%.2f of KV  x%.2f of probe; CPU %.0fus/read, x%.2f of probe's (%d rounds counted)",
				t.Name, s.ReadsPerSec, s.P50Ms, s.P99Ms, s.VsKV, s.VsProbe, s.CPUUs, s.CPUVsProbe, s.Counted)
		}
	}
	res.Profiles = profileTargets(c, e, res.ProfileConc, res.ProfileSecs)
	res.RevokeSeconds += e.revokeAll()
	return res
}

// summarize takes medians over the counted rounds of one target, and its
// ratios to KV and to the probe round by round (both counted in the round).
func summarize(runs []roundResult, conc int, name string) loadSummary {
	s := loadSummary{Conc: conc, Target: name}
	byRound := map[int]map[string]roundResult{}
	var rates, p50s, p99s, cpus []float64
	for _, r := range runs {
		if r.Conc != conc {
			continue
		}
		if byRound[r.Round] == nil {
			byRound[r.Round] = map[string]roundResult{}
		}
		byRound[r.Round][r.Target] = r
		if r.Target != name {
			continue
		}
		if !r.Counted {
			s.Dropped++
			continue
		}
		s.Counted++
		rates = append(rates, r.ReadsPerSec)
		p50s = append(p50s, r.P50Ms)
		p99s = append(p99s, r.P99Ms)
		cpus = append(cpus, r.VaultCPUUs+r.PluginCPUUs)
	}
	s.CPUUs = median(cpus)
	s.CPUVsProbe = roundCPURatio(byRound, name, "probe")
	s.ReadsPerSec, s.P50Ms, s.P99Ms = median(rates), median(p50s), median(p99s)
	s.VsKV = roundRatio(byRound, name, "kv")
	s.VsProbe = roundRatio(byRound, name, "probe")
	return s
}

func roundCPURatio(byRound map[int]map[string]roundResult, name, base string) float64 {
	var ratios []float64
	for _, rs := range byRound {
		a, okA := rs[name]
		b, okB := rs[base]
		ca, cb := a.VaultCPUUs+a.PluginCPUUs, b.VaultCPUUs+b.PluginCPUUs
		if okA && okB && a.Counted && b.Counted && ca > 0 && cb > 0 {
			ratios = append(ratios, ca/cb)
		}
	}
	return median(ratios)
}

func roundRatio(byRound map[int]map[string]roundResult, name, base string) float64 {
	var ratios []float64
	for _, rs := range byRound {
		a, okA := rs[name]
		b, okB := rs[base]
		if okA && okB && a.Counted && b.Counted && b.ReadsPerSec > 0 {
			ratios = append(ratios, a.ReadsPerSec/b.ReadsPerSec)
		}
	}
	return median(ratios)
}

// profileEntry is one profiled load run: CPU and allocation profiles of
// the plugin process and a CPU profile of Vault, taken together while
// ProfileConc clients read one path.
type profileEntry struct {
	Target        string            `json:"target"`
	Mount         string            `json:"mount"`
	ReadsPerSec   float64           `json:"reads_per_sec"`
	Reads         float64           `json:"reads"`
	PluginCPUUs   float64           `json:"plugin_cpu_us_per_read"`
	VaultCPUUs    float64           `json:"vault_cpu_us_per_read"`
	AllocsPerRead float64           `json:"plugin_allocs_per_read"`
	BytesPerRead  float64           `json:"plugin_bytes_per_read"`
	PluginBuckets []bucketShare     `json:"plugin_buckets"`
	AllocBuckets  []bucketShare     `json:"alloc_buckets"`
	HandlerFuncs  []funcShare       `json:"handler_funcs"`
	HandlerAllocs []funcShare       `json:"handler_allocs"`
	VaultBuckets  []bucketShare     `json:"vault_buckets"`
	Files         map[string]string `json:"files"`
	Error         string            `json:"error,omitempty"`
}

func profileTargets(c config, e *devEnv, conc, secs int) []profileEntry {
	var out []profileEntry
	for _, p := range []struct{ target, mount, plugin string }{
		{"aritma", "aritma-prof", profiledPlugin},
		{"probe", "probe", probePlugin},
	} {
		logf("stage b: profiling %s/token/r (%d clients, %ds)", p.mount, conc, secs)
		entry := profileEntry{Target: p.target, Mount: p.mount, Files: map[string]string{}}
		dir := filepath.Join(c.outDir, "profiles")
		files := map[string]string{
			"plugin_cpu":    filepath.Join(dir, p.target+"-plugin-cpu.pb.gz"),
			"plugin_allocs": filepath.Join(dir, p.target+"-plugin-allocs.pb.gz"),
			"vault_cpu":     filepath.Join(dir, p.target+"-vault-cpu.pb.gz"),
		}
		var load roundResult
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			load = runLoad(e.v.Addr, e.loadToken, target{Name: p.target, Path: p.mount + "/token/r"}, conc, time.Duration(secs+2)*time.Second, loadOpts{})
		}()
		time.Sleep(time.Second)
		errs := make(chan error, 3)
		fetch := func(what string, get func(f *os.File) error) {
			defer wg.Done()
			f, err := os.Create(files[what])
			if err == nil {
				err = get(f)
				f.Close()
			}
			if err != nil {
				errs <- fmt.Errorf("%s: %w", what, err)
			}
		}
		wg.Add(3)
		go fetch("plugin_cpu", func(f *os.File) error {
			return pprofGet(e.pprofSocks[p.plugin], fmt.Sprintf("/debug/pprof/profile?seconds=%d", secs), f)
		})
		go fetch("plugin_allocs", func(f *os.File) error {
			return pprofGet(e.pprofSocks[p.plugin], fmt.Sprintf("/debug/pprof/allocs?seconds=%d", secs), f)
		})
		go fetch("vault_cpu", func(f *os.File) error {
			return e.v.get(fmt.Sprintf("sys/pprof/profile?seconds=%d", secs), f)
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			entry.Error += err.Error() + "; "
		}
		entry.ReadsPerSec = load.ReadsPerSec
		entry.Reads = load.ReadsPerSec * float64(secs)
		for k, f := range files {
			rel, _ := filepath.Rel(c.outDir, f)
			entry.Files[k] = rel
		}
		if entry.Error == "" && load.Counted && entry.Reads > 0 {
			analyzeProfiles(&entry, files)
		} else if !load.Counted {
			entry.Error += fmt.Sprintf("load run had %d non-2xx answers (first: %s)", load.Non2xx, load.FirstError)
		}
		if entry.Error != "" {
			logf("  profile of %s: %s", p.target, entry.Error)
		}
		out = append(out, entry)
		e.revokeAll()
	}
	return out
}
