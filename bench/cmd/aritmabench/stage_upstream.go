package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// upstreamResults is stage c: grants at the authorization server per
// rotation, with many readers of one role and with several Vault Agents
// templating one role.
type upstreamResults struct {
	TokenTTL    int           `json:"token_ttl"`
	ReuseSecs   float64       `json:"reuse_secs"`
	RunSecs     float64       `json:"run_secs"`
	Readers     []upstreamRun `json:"readers"`
	Agents      *agentRun     `json:"agents,omitempty"`
	AgentsError string        `json:"agents_error,omitempty"`
	// The same with tokens of agentTTL seconds, run beside stage d.
	AgentsLong      *agentRun `json:"agents_long,omitempty"`
	AgentsLongError string    `json:"agents_long_error,omitempty"`
	ServerFailures  int       `json:"server_failures"`
}

type upstreamRun struct {
	Readers        int     `json:"readers"`
	Reads          int     `json:"reads"`
	Non2xx         int     `json:"non_2xx"`
	FirstError     string  `json:"first_error,omitempty"`
	Seconds        float64 `json:"seconds"`
	Grants         int     `json:"grants"`
	DistinctTokens int     `json:"distinct_tokens"`
	Lifetimes      float64 `json:"lifetimes"`
	P99Ms          float64 `json:"p99_ms"`
}

type agentRun struct {
	TokenTTL       int     `json:"token_ttl"`
	Agents         int     `json:"agents"`
	Seconds        float64 `json:"seconds"`
	Renders        []int   `json:"renders"` // distinct tokens each agent rendered
	DistinctTokens int     `json:"distinct_tokens"`
	Grants         int     `json:"grants"`
	Lifetimes      float64 `json:"lifetimes"`
	Leases         int     `json:"leases"` // leases Vault created for the agents' reads
	// When (seconds from the agents' start) the grant count went up, and
	// when each distinct token was first seen in a rendered file.
	GrantTimes []float64 `json:"grant_times"`
	TokenTimes []float64 `json:"token_times"`
	LeaseTimes []float64 `json:"lease_times"` // when Vault's lease counter for the agents' mount went up
}

func stageUpstream(c config, e *devEnv) *upstreamResults {
	res := &upstreamResults{TokenTTL: shortTTL, RunSecs: 12}
	if c.quick {
		res.RunSecs = 7
	}
	// min_remaining 0 leaves the engine's floor, a fifth of the lifetime plus
	// a second: a 6s token is shared for its first 3.8s, as an hour-long one
	// is for its first 47m59s with the default min_remaining of 1m.
	res.ReuseSecs = float64(shortTTL)*4/5 - 1
	v := e.v
	for _, n := range []string{"up-1", "up-64", "up-1024", "agents"} {
		cl := e.clients[n]
		mount := "aritma"
		if n == "agents" {
			mount = "agents" // a mount of their own, so that Vault's lease counter counts their reads alone
		}
		if n == "agents" {
			cl := e.clients["agents20"]
			v.mustWrite("agents20/roles/agents", map[string]interface{}{
				"environment": "agents20", "client_id": cl.ID, "client_secret": cl.Secret, "scopes": "api", "min_remaining": "0",
			})
		}
		v.mustWrite(mount+"/roles/"+n, map[string]interface{}{
			"environment": "short", "client_id": cl.ID, "client_secret": cl.Secret, "scopes": "api",
			"min_remaining": "0",
		})
	}
	before, err := e.short.stats()
	if err != nil {
		fatalf("oauth stats: %v", err)
	}

	// The agents run while the readers do, on a role of their own.
	const agents = 3
	agentsDone := make(chan struct{})
	var agentRes *agentRun
	var agentErr error
	go func() {
		defer close(agentsDone)
		agentRes, agentErr = runAgents(c, e, "agents", shortTTL, agents, time.Duration(3*res.RunSecs*float64(time.Second)), func() (int, error) {
			st, err := e.short.stats()
			id := e.clients["agents"].ID
			return st.ByClient[id] - before.ByClient[id], err
		})
	}()

	for _, readers := range []int{1, 64, 1024} {
		role := fmt.Sprintf("up-%d", readers)
		logf("stage c: %d concurrent readers of %s for %.0fs (tokens live %ds)", readers, role, res.RunSecs, shortTTL)
		r := runLoad(v.Addr, e.loadToken, target{Name: role, Path: "aritma/token/" + role}, readers,
			time.Duration(res.RunSecs*float64(time.Second)), loadOpts{keepBodies: true})
		run := upstreamRun{Readers: readers, Reads: r.OK, Non2xx: r.Non2xx, FirstError: r.FirstError,
			Seconds: r.Seconds, P99Ms: r.P99Ms, Lifetimes: r.Seconds / shortTTL}
		tokens := map[string]bool{}
		for _, body := range r.bodies {
			var s struct {
				Data struct {
					AccessToken string `json:"access_token"`
				} `json:"data"`
			}
			if json.Unmarshal(body, &s) == nil && s.Data.AccessToken != "" {
				tokens[s.Data.AccessToken] = true
			}
		}
		run.DistinctTokens = len(tokens)
		st, err := e.short.stats()
		if err != nil {
			fatalf("oauth stats: %v", err)
		}
		run.Grants = st.ByClient[e.clients[role].ID] - before.ByClient[e.clients[role].ID]
		logf("  %d reads (%d not 2xx), %d grants, %d distinct tokens seen, %.1f token lifetimes",
			run.Reads, run.Non2xx, run.Grants, run.DistinctTokens, run.Lifetimes)
		res.Readers = append(res.Readers, run)
		if _, err := e.v.revokePrefix("aritma/token/" + role + "/"); err != nil { // not the agents' leases
			logf("  revoke-prefix: %v", err)
		}
	}
	<-agentsDone
	if agentErr != nil {
		res.AgentsError = agentErr.Error()
		logf("  agents: %v", agentErr)
	} else {
		st, _ := e.short.stats()
		res.ServerFailures = st.Failures - before.Failures
		res.Agents = agentRes
		logf("  %d Vault Agents over %.0fs: renders %v, %d distinct tokens, %d grants",
			agentRes.Agents, agentRes.Seconds, agentRes.Renders, agentRes.DistinctTokens, agentRes.Grants)
	}
	return res
}

// startLongAgents runs the Vault Agents again on 20-second tokens, in the
// background (stage d runs meanwhile); wait stores the result in res.
func startLongAgents(c config, e *devEnv, res *upstreamResults) (wait func()) {
	before, err := e.agentOAuth.stats()
	if err != nil {
		res.AgentsLongError = err.Error()
		return func() {}
	}
	done := make(chan struct{})
	lifetimes := 5
	if c.quick {
		lifetimes = 2
	}
	logf("Vault Agents on %ds tokens, beside stage d, for %ds", agentTTL, lifetimes*agentTTL)
	go func() {
		defer close(done)
		run, err := runAgents(c, e, "agents20", agentTTL, 3, time.Duration(lifetimes*agentTTL)*time.Second, func() (int, error) {
			st, err := e.agentOAuth.stats()
			id := e.clients["agents20"].ID
			return st.ByClient[id] - before.ByClient[id], err
		})
		if err != nil {
			res.AgentsLongError = err.Error()
			return
		}
		res.AgentsLong = run
	}()
	return func() {
		<-done
		if a := res.AgentsLong; a != nil {
			logf("  %d Vault Agents on %ds tokens over %.0fs: renders %v, %d distinct tokens, %d grants, %d leases",
				a.Agents, agentTTL, a.Seconds, a.Renders, a.DistinctTokens, a.Grants, a.Leases)
		}
	}
}

// runAgents starts n Vault Agents, each rendering <mount>/token/agents to a
// file of its own, watches the files for dur, and stops them.
func runAgents(c config, e *devEnv, mount string, ttl, n int, dur time.Duration, grants func() (int, error)) (*agentRun, error) {
	dir := filepath.Join(c.outDir, mount)
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(e.loadToken), 0o600); err != nil {
		return nil, err
	}
	leases0, err := e.v.leaseCreations(mount + "/")
	if err != nil {
		return nil, err
	}
	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	rendered := make([]string, n)
	for i := range n {
		rendered[i] = filepath.Join(dir, fmt.Sprintf("access_token-%d", i))
		cfg := filepath.Join(dir, fmt.Sprintf("agent-%d.hcl", i))
		hcl := fmt.Sprintf(`
vault {
  address = "http://%s"
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template {
  contents    = "{{ with secret \"%s/token/agents\" }}{{ .Data.access_token }}{{ end }}"
  destination = %q
}
`, e.v.Addr, tokenFile, mount, rendered[i])
		if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
			return nil, err
		}
		p, err := startProcess(filepath.Join(dir, fmt.Sprintf("agent-%d.log", i)), nil, []string{"VAULT_TOKEN="},
			c.vaultBin, "agent", "-config="+cfg, "-log-level=info")
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	res := &agentRun{TokenTTL: ttl, Agents: n, Renders: make([]int, n)}
	seen := make([]map[string]bool, n)
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	all := map[string]bool{}
	start := time.Now()
	lastGrants, lastLeases := 0, 0
	poll := func() {
		for i, f := range rendered {
			raw, err := os.ReadFile(f)
			if err != nil || len(raw) == 0 {
				continue
			}
			seen[i][string(raw)] = true
			if !all[string(raw)] {
				res.TokenTimes = append(res.TokenTimes, time.Since(start).Seconds())
			}
			all[string(raw)] = true
		}
		if l, err := e.v.leaseCreations(mount + "/"); err == nil && l-leases0 > lastLeases {
			for range l - leases0 - lastLeases {
				res.LeaseTimes = append(res.LeaseTimes, time.Since(start).Seconds())
			}
			lastLeases = l - leases0
		}
		if g, err := grants(); err == nil && g > lastGrants {
			for range g - lastGrants {
				res.GrantTimes = append(res.GrantTimes, time.Since(start).Seconds())
			}
			lastGrants = g
		}
	}
	for time.Since(start) < dur {
		poll()
		time.Sleep(50 * time.Millisecond)
	}
	// Count at a quiet moment, chosen without looking at the grants: just
	// after the next rotation. Once a new token shows up, the other agents'
	// re-reads follow within a second (85-95% of nearly equal leases), and
	// the next rotation is seconds away, so no read is in flight.
	tokensAtEnd := len(all)
	deadline := time.Now().Add(2 * time.Duration(ttl) * time.Second)
	for len(all) == tokensAtEnd && time.Now().Before(deadline) {
		poll()
		time.Sleep(50 * time.Millisecond)
	}
	for settle := time.Now().Add(1500 * time.Millisecond); time.Now().Before(settle); {
		poll()
		time.Sleep(50 * time.Millisecond)
	}
	res.Grants, err = grants()
	if err != nil {
		return nil, err
	}
	leases, err := e.v.leaseCreations(mount + "/")
	if err != nil {
		return nil, err
	}
	res.Leases = leases - leases0
	res.Seconds = time.Since(start).Seconds()
	res.Lifetimes = res.Seconds / float64(ttl)
	for i := range seen {
		res.Renders[i] = len(seen[i])
		if res.Renders[i] == 0 {
			return nil, fmt.Errorf("agent %d rendered nothing\n%s", i, tail(filepath.Join(dir, fmt.Sprintf("agent-%d.log", i)), 20))
		}
	}
	res.DistinctTokens = len(all)
	return res, nil
}
