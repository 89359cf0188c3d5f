package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// leaseResults is stage e: what 10,000 reads leave in a Vault server with
// file storage, and what the operator's remedies change, measured.
type leaseResults struct {
	Reads      int        `json:"reads"`
	SmallReads int        `json:"small_reads"` // for the remedies
	Conc       int        `json:"conc"`
	Runs       []leaseRun `json:"runs"`
	Revoke     *revokeRun `json:"revoke,omitempty"`
	Agent      *leaseRun  `json:"agent_cache,omitempty"`
	AgentError string     `json:"agent_error,omitempty"`
	// AgentPassThrough counts the agent's log lines saying it passed a
	// response through uncached because the secret is not renewable.
	AgentPassThrough int          `json:"agent_pass_through_not_renewable"`
	Short            *shortLeases `json:"short_ttl,omitempty"`
	Quota            quotaTry     `json:"lease_count_quota"`
}

// leaseRun is one batch of reads and what it left behind.
type leaseRun struct {
	Target      string `json:"target"`
	LeasePrefix string `json:"lease_prefix,omitempty"`
	// LeaseFileBytes is the mean size of the lease files under LeasePrefix.
	LeaseFileBytes float64 `json:"lease_file_bytes,omitempty"`
	Label          string  `json:"label"`
	Reads          int     `json:"reads"`
	Non2xx         int     `json:"non_2xx"`
	ReadsPerSec    float64 `json:"reads_per_sec"`
	LeasesAdded    int     `json:"leases_added"`
	StorageBytes   int64   `json:"storage_bytes_added"`
	StorageFiles   int     `json:"storage_files_added"`
	VaultRSSBytes  int64   `json:"vault_rss_added"`
}

type revokeRun struct {
	Prefix       string  `json:"prefix"`
	Leases       int     `json:"leases"`
	Seconds      float64 `json:"seconds"`
	StorageBytes int64   `json:"storage_bytes_change"`
	LeasesLeft   int     `json:"leases_left"`
}

type shortLeases struct {
	MaxLeaseTTL  string   `json:"max_lease_ttl"`
	Run          leaseRun `json:"run"`
	WaitSecs     float64  `json:"wait_secs"`
	LeasesAfter  int      `json:"leases_after_wait"`
	StorageAfter int64    `json:"storage_bytes_after_wait"`
}

type quotaTry struct {
	Accepted bool   `json:"accepted"`
	Answer   string `json:"answer"`
}

type storageState struct {
	bytes  int64
	files  int
	leases int
	rss    int64
}

func stageLeases(c config, e *devEnv) *leaseResults {
	res := &leaseResults{Reads: 10000, SmallReads: 2000, Conc: 16}
	if c.quick {
		res.Reads, res.SmallReads = 2000, 500
	}
	dir := filepath.Join(c.outDir, "leases")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	logf("stage e: Vault with file storage")
	v, err := startVaultFile(c.vaultBin, dir)
	if err != nil {
		fatalf("%v", err)
	}
	defer v.proc.stop()
	if _, err := v.registerPlugin(enginePlugin, filepath.Join(c.binDir, "vault-plugin-secrets-aritma")); err != nil {
		fatalf("%v", err)
	}
	for _, m := range []struct{ path, ttl string }{{"aritma", ""}, {"aritma-short", "10s"}} {
		if err := v.mount(m.path, enginePlugin, m.ttl, nil); err != nil {
			fatalf("%v", err)
		}
		cl := e.clients["leases"]
		v.mustWrite(m.path+"/environments/bank", map[string]interface{}{"token_url": e.long.TokenEndpoint})
		for _, role := range []string{"r", "r2"} {
			v.mustWrite(m.path+"/roles/"+role, map[string]interface{}{
				"environment": "bank", "client_id": cl.ID, "client_secret": cl.Secret, "scopes": "api",
			})
		}
	}
	if err := v.mount("kv", "kv", "", map[string]string{"version": "1"}); err != nil {
		fatalf("%v", err)
	}
	v.mustWrite("kv/r", map[string]interface{}{"access_token": strings.Repeat("x", e.tokenLen)})
	if err := v.mount("ssh", "ssh", "", nil); err != nil {
		fatalf("%v", err)
	}
	v.mustWrite("ssh/roles/otp", map[string]interface{}{"key_type": "otp", "default_user": "bench", "cidr_list": "127.0.0.0/8"})
	if err := v.client.Sys().PutPolicy("bench", `
path "aritma/token/*"       { capabilities = ["read"] }
path "aritma-short/token/*" { capabilities = ["read"] }
path "kv/*"                 { capabilities = ["read"] }
path "ssh/creds/*"          { capabilities = ["update"] }
`); err != nil {
		fatalf("%v", err)
	}
	s, err := v.client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"bench"}, TTL: "4h"})
	if err != nil {
		fatalf("%v", err)
	}
	token := s.Auth.ClientToken

	// A lease is one file under sys/expire/id/<lease path>/ in file storage.
	leasesUnder := func(prefix string) int {
		if prefix == "" {
			return 0
		}
		_, n, _ := dirUsage(filepath.Join(v.DataDir, "sys", "expire", "id", filepath.FromSlash(prefix)))
		return n
	}
	state := func(prefix string) storageState {
		var st storageState
		st.bytes, st.files, _ = dirUsage(v.DataDir)
		st.leases = leasesUnder(prefix)
		st.rss, _ = rssBytes(v.pid())
		return st
	}
	batch := func(addr, tok string, t target, label, leasePrefix string, reads int) leaseRun {
		before := state(leasePrefix)
		r := runLoad(addr, tok, t, res.Conc, 10*time.Minute, loadOpts{maxHits: uint64(reads)})
		after := state(leasePrefix)
		run := leaseRun{
			Target: t.Name, Label: label, LeasePrefix: leasePrefix, Reads: r.OK, Non2xx: r.Non2xx, ReadsPerSec: r.ReadsPerSec,
			LeasesAdded: after.leases - before.leases, StorageBytes: after.bytes - before.bytes,
			StorageFiles: after.files - before.files, VaultRSSBytes: after.rss - before.rss,
		}
		if leasePrefix != "" {
			b, n, _ := dirUsage(filepath.Join(v.DataDir, "sys", "expire", "id", filepath.FromSlash(leasePrefix)))
			if n > 0 {
				run.LeaseFileBytes = float64(b) / float64(n)
			}
		}
		logf("  %s: %d reads at %.0f/s (%d not 2xx): +%d leases, +%d files, +%.1f MiB storage, Vault RSS %+.1f MiB",
			t.Name, run.Reads, run.ReadsPerSec, run.Non2xx, run.LeasesAdded, run.StorageFiles, mib(run.StorageBytes), mib(run.VaultRSSBytes))
		return run
	}
	sshBody, _ := json.Marshal(map[string]string{"ip": "127.0.0.1"})
	logf("stage e: %d reads of each path, %d clients", res.Reads, res.Conc)
	if _, err := v.client.Logical().Read("aritma/token/r"); err != nil { // the grant, before counting
		fatalf("stage e: first read: %v", err)
	}
	for _, t := range []struct {
		target
		label, prefix string
	}{
		{target{Name: "kv", Path: "kv/r"}, "KV v1 read (no lease)", ""},
		{target{Name: "ssh", Method: http.MethodPost, Path: "ssh/creds/otp", Body: sshBody}, "SSH OTP", "ssh/creds/otp"},
		{target{Name: "aritma", Path: "aritma/token/r"}, "aritma/token (cache hit)", "aritma/token/r"},
	} {
		res.Runs = append(res.Runs, batch(v.Addr, token, t.target, t.label, t.prefix, res.Reads))
	}

	// Remedy: Vault Agent's API proxy cache in front of the readers.
	if run, err := agentCacheRun(c, v, token, dir, res.SmallReads, batch); err != nil {
		res.AgentError = err.Error()
		logf("  agent cache: %v", err)
	} else {
		res.Agent = run
		raw, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		res.AgentPassThrough = strings.Count(string(raw), "pass-through response; secret not renewable")
		logf("  the agent passed %d responses through uncached: \"secret not renewable\"", res.AgentPassThrough)
	}

	// Remedy: a short max_lease_ttl on the mount: leases end sooner.
	short := &shortLeases{MaxLeaseTTL: "10s"}
	short.Run = batch(v.Addr, token, target{Name: "aritma-short", Path: "aritma-short/token/r"},
		"aritma/token on a mount tuned to max_lease_ttl=10s", "aritma-short/token/r", res.SmallReads)
	start := time.Now()
	time.Sleep(11 * time.Second)
	st := state("aritma-short/token/r")
	short.WaitSecs = time.Since(start).Seconds()
	short.LeasesAfter = st.leases
	short.StorageAfter = st.bytes
	res.Short = short
	logf("  %.0fs after the short-TTL reads: %d of their leases left; storage %.1f MiB", short.WaitSecs, short.LeasesAfter, mib(st.bytes))

	// Remedy: revoking by prefix (the agent run's leases, of a role of their own).
	const revokePrefix = "aritma/token/r2"
	before := state(revokePrefix)
	d, err := v.revokePrefix(revokePrefix + "/")
	if err != nil {
		logf("  revoke-prefix: %v", err)
	}
	after := state(revokePrefix)
	res.Revoke = &revokeRun{Prefix: revokePrefix + "/", Leases: before.leases - after.leases, Seconds: d.Seconds(), StorageBytes: after.bytes - before.bytes, LeasesLeft: after.leases}
	logf("  revoke-prefix %s/: %d leases in %.1fs, storage %+.1f MiB", revokePrefix, res.Revoke.Leases, res.Revoke.Seconds, mib(res.Revoke.StorageBytes))

	// Remedy: a lease count quota (Vault Enterprise).
	_, err = v.client.Logical().Write("sys/quotas/lease-count/aritma", map[string]interface{}{"path": "aritma/", "max_leases": 1000})
	res.Quota.Accepted = err == nil
	var rerr *api.ResponseError
	switch {
	case errors.As(err, &rerr):
		res.Quota.Answer = fmt.Sprintf("%d %s", rerr.StatusCode, strings.Join(rerr.Errors, "; "))
	case err != nil:
		res.Quota.Answer = err.Error()
	default:
		res.Quota.Answer = "accepted"
	}
	logf("  lease count quota: %s", res.Quota.Answer)
	return res
}

// agentCacheRun sends the reads through a Vault Agent whose API proxy caches
// leased responses, and counts the leases they create at Vault.
func agentCacheRun(c config, v *vaultServer, token, dir string, reads int, batch func(string, string, target, string, string, int) leaseRun) (*leaseRun, error) {
	tokenFile := filepath.Join(dir, "agent-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	listen := mustFreeAddr()
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
cache {}
api_proxy {
  use_auto_auth_token = true
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
`, v.Addr, tokenFile, listen)
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	p, err := startProcess(filepath.Join(dir, "agent.log"), nil, []string{"VAULT_TOKEN="}, c.vaultBin, "agent", "-config="+cfg, "-log-level=debug")
	if err != nil {
		return nil, err
	}
	defer p.stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("agent did not listen in 30s\n%s", tail(filepath.Join(dir, "agent.log"), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	run := batch(listen, "", target{Name: "agent-cache", Path: "aritma/token/r2"}, "aritma/token through Vault Agent's API proxy cache", "aritma/token/r2", reads)
	return &run, nil
}
