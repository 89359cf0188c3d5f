package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// Token lifetimes at the two OAuth servers: long, so that load runs read
// cached tokens only; short, so that the grants stage sees rotations.
const (
	longTTL  = 3600
	shortTTL = 6
)

// Plugin names in Vault's catalog besides the engine's: each name runs in a
// process of its own.
const (
	profiledPlugin = "aritma-profiled" // the engine built with -tags profiling, for the growth stage
	probePlugin    = "bench-probe"     // the ceiling probe, bench/cmd/probe
)

// grantReaders are the reader counts of the grants stage, each with a
// client of its own at the short-lived OAuth server.
var grantReaders = []int{1, 4, 16}

// env is the Vault dev server and the OAuth servers the stages share, with
// these mounts:
//
//	kv/      KV version 1, the no-lease floor
//	probe/   the ceiling probe
//	aritma/  the engine, shipped build
//	growth/  the engine, profiling build (the growth stage mounts it)
type env struct {
	v           *testservers.Vault
	long, short *testservers.OAuthServer
	loadToken   string // a non-root token whose policy allows the reads
	tokenBytes  int    // length of the engine's access tokens
	gcSocket    string // the profiling build's socket
}

func oauthClient(id string) testservers.OAuthClient {
	return testservers.OAuthClient{ID: id, Secret: "bench-" + randomHex(12), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
}

func setup(c config) *env {
	dir := filepath.Join(c.outDir, "run")
	_ = os.RemoveAll(dir)
	sub := func(name string) string {
		d := filepath.Join(dir, name)
		check(os.MkdirAll(d, 0o755), "setup")
		return d
	}
	shipped, profiled := filepath.Join(c.binDir, "aritma"), filepath.Join(c.binDir, "aritma-profiled")
	logf("building the plugin and its profiling build")
	check(errors.Join(testservers.BuildPlugin(c.repo, "v0.0.0-bench", shipped),
		testservers.BuildPlugin(c.repo, "v0.0.0-bench", profiled, "profiling")), "building the plugin")
	// Unix socket paths are limited to about 100 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "aritmabench-")
	check(err, "setup")
	stops = append(stops, func() { os.RemoveAll(sockDir) })
	e := &env{gcSocket: filepath.Join(sockDir, "gc.sock")}

	logf("starting the OAuth servers and Vault (dev)")
	script := filepath.Join(c.repo, "e2e", "oauthserver", "server.mjs")
	startOAuth := func(name string, ttl int, clients ...testservers.OAuthClient) *testservers.OAuthServer {
		srv, err := testservers.StartOAuthServer(script, sub(name), testservers.OAuthConfig{TokenTTL: ttl, Clients: clients,
			Users: []testservers.OAuthUser{customer}})
		if srv != nil {
			stops = append(stops, srv.Stop)
		}
		check(err, "starting the OAuth server")
		return srv
	}
	customers := oauthClient("bench-customers")
	customers.GrantTypes, customers.RedirectURIs = []string{"authorization_code", "refresh_token"}, []string{customerRedirect}
	e.long = startOAuth("oauth-long", longTTL, oauthClient("bench"), customers)
	var shortClients []testservers.OAuthClient
	for _, n := range grantReaders {
		shortClients = append(shortClients, oauthClient(fmt.Sprintf("grants-%d", n)))
	}
	e.short = startOAuth("oauth-short", shortTTL, shortClients...)
	e.v, err = testservers.StartVaultDev(c.vaultBin, sub("vault"), "root-"+randomHex(8))
	if e.v != nil {
		stops = append(stops, e.v.Stop)
	}
	check(err, "starting Vault")

	check(e.v.RegisterPlugin(testservers.Plugin{Name: testservers.PluginName, Binary: shipped}), "registering the plugin")
	check(e.v.RegisterPlugin(testservers.Plugin{Name: profiledPlugin, Binary: profiled, Env: []string{"ARITMA_PPROF_SOCKET=" + e.gcSocket}}), "registering the plugin")
	e.mount("aritma", testservers.PluginName, nil)
	e.write("aritma/environments/bank", map[string]interface{}{"token_url": e.long.TokenEndpoint})
	e.write("aritma/environments/short", map[string]interface{}{"token_url": e.short.TokenEndpoint})
	e.writeRole("aritma", "r", "bank", e.long.Clients[0], nil)
	tok, err := e.v.Client.Logical().Read("aritma/token/r")
	check(err, "reading the first token")
	e.tokenBytes = len(tok.Data["access_token"].(string))
	e.consentCustomer(customers)

	// The probe and the KV secret answer with the engine's fields and a
	// token of the same length, so that all three move as many bytes.
	check(e.v.RegisterPlugin(testservers.Plugin{Name: probePlugin, Binary: filepath.Join(c.binDir, "probe"),
		Env: []string{fmt.Sprintf("PROBE_TOKEN_BYTES=%d", e.tokenBytes)}}), "registering the probe")
	e.mount("probe", probePlugin, nil)
	e.mount("kv", "kv", map[string]string{"version": "1"})
	e.write("kv/r", map[string]interface{}{
		"access_token": strings.Repeat("x", e.tokenBytes), "token_type": "Bearer",
		"expires_at": "2099-01-01T00:00:00Z", "scope": "api",
	})
	policy := `
path "aritma/token/*" { capabilities = ["read"] }
path "aritma/creds/accounts/c" { capabilities = ["read"] }
path "growth/token/*" { capabilities = ["read"] }
path "probe/token/*"  { capabilities = ["read"] }
path "kv/*"           { capabilities = ["read"] }
`
	check(e.v.Client.Sys().PutPolicy("bench", policy), "writing the bench policy")
	s, err := e.v.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"bench"}, TTL: "4h"})
	check(err, "creating the load token")
	e.loadToken = s.Auth.ClientToken
	return e
}

// The bank customer whose credential the load stage reads.
var customer = testservers.OAuthUser{Username: "bench-customer", Password: "bench-" + randomHex(12)}

const customerRedirect = "http://127.0.0.1:9/callback"

// consentCustomer gives role accounts (client cl at the long-lived OAuth
// server, found by discovery) the customer's consent as credential c, the
// app-posted way, and reads its first token.
func (e *env) consentCustomer(cl testservers.OAuthClient) {
	e.write("aritma/environments/customers", map[string]interface{}{"issuer": e.long.Issuer})
	e.write("aritma/roles/accounts", map[string]interface{}{
		"environment": "customers", "client_id": cl.ID, "client_secret": cl.Secret,
		"allowed_grant_types": "authorization_code", "consent_scopes": "api offline_access", "redirect_uris": customerRedirect,
	})
	start, err := e.v.Client.Logical().Write("aritma/creds/accounts/c/authorize", nil)
	check(err, "starting the customer's consent")
	redirect, err := e.long.Consent(start.Data["authorization_url"].(string), customer.Username, customer.Password, true)
	check(err, "the customer's consent")
	e.write("aritma/creds/accounts/c", map[string]interface{}{"callback_url": redirect.String()})
	_, err = e.v.Client.Logical().Read("aritma/creds/accounts/c")
	check(err, "reading the customer's first token")
}

// check stops the run on an error.
func check(err error, what string) {
	if err != nil {
		fatalf("%s: %v", what, err)
	}
}

func (e *env) mount(path, typ string, options map[string]string) {
	check(e.v.Client.Sys().Mount(path, &api.MountInput{Type: typ, Options: options}), "mounting "+typ+" at "+path)
}

func (e *env) write(path string, data map[string]interface{}) {
	_, err := e.v.Client.Logical().Write(path, data)
	check(err, "write "+path)
}

func (e *env) writeRole(mount, role, environment string, cl testservers.OAuthClient, extra map[string]interface{}) {
	data := map[string]interface{}{"environment": environment, "client_id": cl.ID, "client_secret": cl.Secret, "scopes": "api"}
	for k, v := range extra {
		data[k] = v
	}
	e.write(mount+"/roles/"+role, data)
}

// revoke revokes every lease under the prefixes, outside the measured time:
// every leased read adds one to Vault's expiration manager, and thousands
// left in it would slow the rounds after.
func (e *env) revoke(prefixes ...string) {
	for _, p := range prefixes {
		if _, err := e.v.Client.Logical().Write("sys/leases/revoke-prefix/"+p, map[string]interface{}{"sync": true}); err != nil {
			logf("revoke-prefix %s: %v", p, err)
		}
	}
}

// roundResult is one closed-loop load run: conc clients, each sending its
// next request when the last one is answered, for a fixed time.
type roundResult struct {
	Target      string  `json:"target"`
	Conc        int     `json:"conc"`
	Round       int     `json:"round"`
	Requests    int     `json:"requests"`
	Non2xx      int     `json:"non_2xx"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	ReadsPerSec float64 `json:"reads_per_sec"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

// counted: a round with an error answer is reported, not compared.
func (r roundResult) counted() bool { return r.Non2xx == 0 && r.Requests > 0 }

// runLoad reads a random one of paths with conc vegeta workers, each
// sending as soon as its last answer came back, for dur. With tokens set,
// it collects the access tokens of the answers.
func (e *env) runLoad(name string, paths []string, conc int, dur time.Duration, tokens map[string]bool) roundResult {
	header := http.Header{"X-Vault-Token": {e.loadToken}}
	base := "http://" + e.v.Addr + "/v1/"
	targeter := func(t *vegeta.Target) error {
		*t = vegeta.Target{Method: http.MethodGet, URL: base + paths[rand.IntN(len(paths))], Header: header}
		return nil
	}
	maxBody := int64(0) // read and discard
	if tokens != nil {
		maxBody = -1
	}
	attacker := vegeta.NewAttacker(vegeta.Workers(uint64(conc)), vegeta.MaxWorkers(uint64(conc)),
		vegeta.Connections(conc), vegeta.MaxConnections(conc), vegeta.KeepAlive(true), vegeta.HTTP2(false),
		vegeta.Timeout(60*time.Second), vegeta.MaxBody(maxBody))
	res := roundResult{Target: name, Conc: conc}
	var latencies []time.Duration
	var metrics vegeta.Metrics
	for r := range attacker.Attack(targeter, vegeta.ConstantPacer{}, dur, name) {
		metrics.Add(r)
		latencies = append(latencies, r.Latency)
		if r.Code < 200 || r.Code > 299 {
			if res.Non2xx++; res.FirstError == "" {
				res.FirstError = fmt.Sprintf("%d %s %.200s", r.Code, r.Error, r.Body)
			}
			continue
		}
		if tokens != nil {
			var s struct {
				Data struct {
					AccessToken string `json:"access_token"`
				} `json:"data"`
			}
			if json.Unmarshal(r.Body, &s) == nil && s.Data.AccessToken != "" {
				tokens[s.Data.AccessToken] = true
			}
		}
	}
	metrics.Close()
	res.Requests = int(metrics.Requests)
	res.Seconds = (metrics.Duration + metrics.Wait).Seconds()
	if res.Seconds > 0 {
		res.ReadsPerSec = float64(res.Requests-res.Non2xx) / res.Seconds
	}
	slices.Sort(latencies)
	res.P50Ms, res.P99Ms = quantileMs(latencies, 0.50), quantileMs(latencies, 0.99)
	return res
}

// quantileMs is the q-quantile (nearest rank) of sorted latencies.
func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := max(0, min(int(q*float64(len(sorted))+0.5)-1, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}
