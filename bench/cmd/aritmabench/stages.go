package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// loadResults is the load stage: reads per second through Vault.
type loadResults struct {
	Conc       []int         `json:"conc"`
	Rounds     int           `json:"rounds"`
	RoundSecs  float64       `json:"round_secs"`
	TokenBytes int           `json:"token_bytes"`
	Runs       []roundResult `json:"runs"`
}

// loadTargets are the load stage's reads, in the report's order.
var loadTargets = []struct{ name, path string }{
	{"kv", "kv/r"}, {"probe", "probe/token/r"}, {"aritma", "aritma/token/r"}, {"creds", "aritma/creds/accounts/c"},
}

func stageLoad(c config, e *env) *loadResults {
	r := &loadResults{Conc: []int{1, 16, 64}, Rounds: 6, RoundSecs: 1, TokenBytes: e.tokenBytes}
	if c.quick {
		r.Conc, r.Rounds, r.RoundSecs = []int{1, 16}, 2, 0.5
	}
	dur := seconds(r.RoundSecs)
	for _, conc := range r.Conc {
		logf("load: %d clients, %d rounds of %s per target", conc, r.Rounds, dur)
		for _, t := range loadTargets {
			e.runLoad(t.name, []string{t.path}, conc, dur/4, nil) // warm-up, not counted
		}
		e.revoke("probe/token/", "aritma/token/", "aritma/creds/")
		for round := range r.Rounds {
			for i := range loadTargets {
				t := loadTargets[(i+round)%len(loadTargets)] // a different target first each round
				rr := e.runLoad(t.name, []string{t.path}, conc, dur, nil)
				rr.Round = round
				if !rr.counted() {
					logf("  round %d %s: %d of %d answers not 2xx (first: %s)", round, t.name, rr.Non2xx, rr.Requests, rr.FirstError)
				}
				r.Runs = append(r.Runs, rr)
			}
			e.revoke("probe/token/", "aritma/token/", "aritma/creds/")
		}
		logf("  aritma: ×%.2f of the probe's reads/s", summarize(roundRatios(r.Runs, conc, "aritma", "probe")).Center)
	}
	return r
}

// grantRun is one run of the grants stage: readers of one role whose
// tokens live TokenTTL seconds, and what the OAuth server saw meanwhile.
type grantRun struct {
	Readers    int     `json:"readers"`
	TokenTTL   int     `json:"token_ttl"`
	Reads      int     `json:"reads"`
	Non2xx     int     `json:"non_2xx"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	Tokens     int     `json:"tokens"` // distinct access tokens in the answers: the rotations the readers saw
	Grants     int     `json:"grants"` // tokens the OAuth server issued to the role's client
}

func stageGrants(c config, e *env) []grantRun {
	secs := 15.0
	if c.quick {
		secs = 7
	}
	var runs []grantRun
	for i, n := range grantReaders {
		cl, role := e.short.Clients[i], fmt.Sprintf("grants-%d", n)
		// min_remaining 0 leaves the engine's floor, so that 6 s tokens rotate
		// every few seconds, as hour-long ones do every ~48 minutes.
		e.writeRole("aritma", role, "short", cl, map[string]interface{}{"min_remaining": "0"})
		logf("grants: %d readers of %s for %.0fs (tokens live %ds)", n, role, secs, shortTTL)
		before, err := e.short.Stats()
		check(err, "OAuth stats")
		tokens := map[string]bool{}
		r := e.runLoad(role, []string{"aritma/token/" + role}, n, seconds(secs), tokens)
		after, err := e.short.Stats()
		check(err, "OAuth stats")
		run := grantRun{Readers: n, TokenTTL: shortTTL, Reads: r.Requests - r.Non2xx, Non2xx: r.Non2xx, FirstError: r.FirstError,
			Seconds: r.Seconds, Tokens: len(tokens), Grants: after.ByClient[cl.ID] - before.ByClient[cl.ID]}
		logf("  %d reads (%d not 2xx), %d tokens seen, %d grants", run.Reads, run.Non2xx, run.Tokens, run.Grants)
		runs = append(runs, run)
		e.revoke("aritma/token/" + role + "/")
	}
	return runs
}

// growthResults is the growth stage: the profiling build's memory and read
// rate as the number of roles, each with a cached token, grows.
type growthResults struct {
	Conc      int           `json:"conc"`
	Rounds    int           `json:"rounds"`
	RoundSecs float64       `json:"round_secs"`
	Levels    []growthLevel `json:"levels"`
}

type growthLevel struct {
	Roles int           `json:"roles"`
	RSS   int64         `json:"rss"`        // the plugin process's VmRSS after a forced collection
	Heap  int64         `json:"heap_inuse"` // the Go heap in use after it
	Runs  []roundResult `json:"runs"`       // "token" (a random role each read) and "kv"
	// Scrapes are reads of growth/metrics at the default metrics_role_limit
	// and with every role's own series.
	Scrapes []scrapeResult `json:"scrapes"`
}

// scrapeResult is a metrics read as Prometheus makes it, repeated.
type scrapeResult struct {
	Limit    int       `json:"metrics_role_limit"`
	Series   int       `json:"series"` // sample lines in the answer
	Bytes    int       `json:"bytes"`
	Millis   []float64 `json:"millis"` // each read's time, through Vault
	MedianMs float64   `json:"median_ms"`
}

// scrapeLimits are the metrics_role_limit values the growth stage scrapes
// with: the default, and high enough that every role has its own series.
var scrapeLimits = []int{1000, 100000}

// scrapes reads mount's metrics scrapeTimes times at each of scrapeLimits,
// the way Prometheus does (a GET with a token, the text format back).
func (e *env) scrapes(mount string) []scrapeResult {
	const scrapeTimes = 9
	var out []scrapeResult
	for _, limit := range scrapeLimits {
		e.write(mount+"/config", map[string]interface{}{"metrics_role_limit": limit})
		r := scrapeResult{Limit: limit}
		for range scrapeTimes {
			req, _ := http.NewRequest(http.MethodGet, "http://"+e.v.Addr+"/v1/"+mount+"/metrics", nil)
			req.Header.Set("X-Vault-Token", e.v.Token)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			check(err, "growth: scraping metrics")
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			check(err, "growth: scraping metrics")
			r.Millis = append(r.Millis, float64(time.Since(start).Microseconds())/1000)
			if resp.StatusCode != http.StatusOK {
				fatalf("growth: metrics answered %s", resp.Status)
			}
			r.Bytes, r.Series = len(body), 0
			for _, line := range strings.Split(string(body), "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					r.Series++
				}
			}
		}
		r.MedianMs = summarize(r.Millis).Center
		out = append(out, r)
	}
	e.write(mount+"/config", map[string]interface{}{"metrics_role_limit": scrapeLimits[0]})
	return out
}

func stageGrowth(c config, e *env) *growthResults {
	r := &growthResults{Conc: 16, Rounds: 4, RoundSecs: 1.5}
	levels := []int{10, 1000, 10000}
	if c.quick {
		r.Rounds, r.RoundSecs, levels = 2, 0.5, []int{10, 100, 1000}
	}
	e.mount("growth", profiledPlugin, nil)
	e.write("growth/environments/bank", map[string]interface{}{"token_url": e.long.TokenEndpoint})
	var paths []string
	for _, n := range levels {
		logf("growth: %d roles", n)
		var names []string
		for i := len(paths); i < n; i++ {
			names = append(names, fmt.Sprintf("g%05d", i))
		}
		parallel(names, func(name string) error {
			_, err := e.v.Client.Logical().Write("growth/roles/"+name, map[string]interface{}{
				"environment": "bank", "client_id": e.long.Clients[0].ID, "client_secret": e.long.Clients[0].Secret, "scopes": "api",
			})
			return err
		})
		parallel(names, func(name string) error { // a grant each: every role has a cached token
			_, err := e.v.Client.Logical().Read("growth/token/" + name)
			return err
		})
		for _, name := range names {
			paths = append(paths, "growth/token/"+name)
		}
		e.revoke("growth/token/")
		lvl := growthLevel{Roles: n}
		lvl.RSS, lvl.Heap = e.memory()
		targets := []struct {
			name  string
			paths []string
		}{{"kv", []string{"kv/r"}}, {"token", paths}}
		for round := range r.Rounds {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				rr := e.runLoad(t.name, t.paths, r.Conc, seconds(r.RoundSecs), nil)
				rr.Round = round
				lvl.Runs = append(lvl.Runs, rr)
			}
			e.revoke("growth/token/")
		}
		// After the rounds: a scrape of every role's series makes megabytes
		// of garbage in Vault and the plugin.
		lvl.Scrapes = e.scrapes("growth")
		logf("  RSS %.1f MiB, heap %.1f MiB; token reads ×%.2f of KV's", mib(lvl.RSS), mib(lvl.Heap),
			summarize(roundRatios(lvl.Runs, r.Conc, "token", "kv")).Center)
		r.Levels = append(r.Levels, lvl)
	}
	return r
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// memory asks the profiling build for a forced collection (which also
// hands freed memory back to the OS) and reads its heap and RSS after it.
func (e *env) memory() (rss, heap int64) {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", e.gcSocket)
	}}}
	resp, err := client.Get("http://plugin/debug/gc")
	check(err, "growth: /debug/gc")
	defer resp.Body.Close()
	var m struct {
		HeapInuse int64 `json:"heap_inuse"`
		Pid       int   `json:"pid"`
	}
	check(json.NewDecoder(resp.Body).Decode(&m), "growth: /debug/gc")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.Pid))
	_, rest, ok := strings.Cut(string(status), "VmRSS:")
	if err != nil || !ok {
		fatalf("growth: no VmRSS for pid %d: %v", m.Pid, err)
	}
	kb, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
	return kb * 1024, m.HeapInuse
}

// parallel runs fn over items with 16 workers and stops the run on an error.
func parallel(items []string, fn func(string) error) {
	work, errs := make(chan string), make(chan error, len(items))
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for item := range work {
				if err := fn(item); err != nil {
					errs <- fmt.Errorf("%s: %w", item, err)
				}
			}
		}()
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		fatalf("growth: %v", err)
	}
}
