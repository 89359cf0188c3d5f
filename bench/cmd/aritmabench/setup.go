package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/vault/api"
)

// Plugin names in Vault's catalog. Each name runs in a process of its own.
const (
	enginePlugin   = "vault-plugin-secrets-aritma" // the shipped build, from main.go
	profiledPlugin = "aritma-profiled"             // the engine with a pprof server
	growthPlugin   = "aritma-growth"               // the same build, a process of its own for stage d
	probePlugin    = "bench-probe"                 // the ceiling probe
)

// Token lifetimes at the two OAuth servers: long, so that load runs read
// cached tokens only; short, so that stage c sees several rotations.
const (
	longTTL  = 3600
	shortTTL = 6
	agentTTL = 20 // the second Vault Agent run (beside stage d)
)

// devEnv is the Vault dev server of stages b, c and d and what runs beside it.
type devEnv struct {
	v           *vaultServer
	long, short *oauthServer
	agentOAuth  *oauthServer // tokens of agentTTL seconds
	clients     map[string]oauthClient
	loadToken   string // a non-root token with the bench policy
	tokenLen    int    // length of the engine's access tokens
	pluginPaths map[string]string
	pprofSocks  map[string]string // Unix sockets of the profiled builds
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// setupDev starts both OAuth servers and a Vault dev server with every
// mount the stages use:
//
//	kv/            KV version 1, the no-lease floor
//	ssh/           the SSH engine issuing OTPs, the built-in leased floor
//	probe/         the ceiling probe (external plugin, constant leased secret)
//	aritma/        the engine, shipped build
//	aritma-prof/   the engine, profiled build (profiles only)
//	agents/        the engine, shipped build, for stage c's Vault Agents
//	agents20/      the same, for the Vault Agents on 20-second tokens
func setupDev(c config) *devEnv {
	dir := filepath.Join(c.outDir, "dev")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatalf("%v", err)
	}
	script := filepath.Join(c.repo, "e2e", "oauthserver", "server.mjs")
	e := &devEnv{clients: map[string]oauthClient{}, pluginPaths: map[string]string{}, pprofSocks: map[string]string{}}
	var longClients, shortClients []oauthClient
	for _, id := range []string{"bench", "growth", "leases"} {
		e.clients[id] = newOAuthClient(id)
		longClients = append(longClients, e.clients[id])
	}
	for _, id := range []string{"up-1", "up-64", "up-1024", "agents"} {
		e.clients[id] = newOAuthClient(id)
		shortClients = append(shortClients, e.clients[id])
	}
	// Unix socket paths are limited to about 100 bytes: keep them short.
	sockDir, err := os.MkdirTemp("", "aritmabench-")
	if err != nil {
		fatalf("%v", err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(sockDir) })
	logf("starting the OAuth servers and Vault (dev)")
	if e.long, err = startOAuthServer(script, dir, longTTL, longClients...); err != nil {
		fatalf("%v", err)
	}
	if e.short, err = startOAuthServer(script, dir, shortTTL, shortClients...); err != nil {
		fatalf("%v", err)
	}
	e.clients["agents20"] = newOAuthClient("agents20")
	if e.agentOAuth, err = startOAuthServer(script, dir, agentTTL, e.clients["agents20"]); err != nil {
		fatalf("%v", err)
	}
	if e.v, err = startVaultDev(c.vaultBin, dir); err != nil {
		fatalf("%v", err)
	}
	v := e.v

	for _, p := range []struct{ name, bin string }{
		{enginePlugin, "vault-plugin-secrets-aritma"},
		{profiledPlugin, "aritma-profiled"},
		{growthPlugin, "aritma-profiled"},
	} {
		env := []string{}
		if p.name != enginePlugin {
			e.pprofSocks[p.name] = filepath.Join(sockDir, p.name+".sock")
			env = append(env, "BENCH_PPROF_SOCKET="+e.pprofSocks[p.name])
		}
		if e.pluginPaths[p.name], err = v.registerPlugin(p.name, filepath.Join(c.binDir, p.bin), env...); err != nil {
			fatalf("%v", err)
		}
	}
	for _, m := range []struct{ path, plugin string }{
		{"aritma", enginePlugin}, {"aritma-prof", profiledPlugin}, {"agents", enginePlugin}, {"agents20", enginePlugin},
	} {
		if err := v.mount(m.path, m.plugin, "", nil); err != nil {
			fatalf("%v", err)
		}
		v.mustWrite(m.path+"/environments/bank", map[string]interface{}{"token_url": e.long.TokenEndpoint})
		v.mustWrite(m.path+"/environments/short", map[string]interface{}{"token_url": e.short.TokenEndpoint})
		v.mustWrite(m.path+"/environments/agents20", map[string]interface{}{"token_url": e.agentOAuth.TokenEndpoint})
		bench := e.clients["bench"]
		v.mustWrite(m.path+"/roles/r", map[string]interface{}{
			"environment": "bank", "client_id": bench.ID, "client_secret": bench.Secret, "scopes": "api",
		})
	}
	tok, err := v.client.Logical().Read("aritma/token/r")
	if err != nil {
		fatalf("reading the first token: %v", err)
	}
	e.tokenLen = len(tok.Data["access_token"].(string))
	if _, err := v.client.Logical().Read("aritma-prof/token/r"); err != nil {
		fatalf("reading the first token (profiled build): %v", err)
	}

	// The probe answers with the engine's fields and a token of the same length.
	e.pprofSocks[probePlugin] = filepath.Join(sockDir, probePlugin+".sock")
	if e.pluginPaths[probePlugin], err = v.registerPlugin(probePlugin, filepath.Join(c.binDir, "probe"),
		"BENCH_PPROF_SOCKET="+e.pprofSocks[probePlugin], fmt.Sprintf("PROBE_TOKEN_BYTES=%d", e.tokenLen)); err != nil {
		fatalf("%v", err)
	}
	if err := v.mount("probe", probePlugin, "", nil); err != nil {
		fatalf("%v", err)
	}
	if err := v.mount("kv", "kv", "", map[string]string{"version": "1"}); err != nil {
		fatalf("%v", err)
	}
	v.mustWrite("kv/r", map[string]interface{}{
		"access_token": strings.Repeat("x", e.tokenLen), "token_type": "Bearer",
		"expires_at": "2099-01-01T00:00:00Z", "scope": "api",
	})
	if err := v.mount("ssh", "ssh", "", nil); err != nil {
		fatalf("%v", err)
	}
	v.mustWrite("ssh/roles/otp", map[string]interface{}{
		"key_type": "otp", "default_user": "bench", "cidr_list": "127.0.0.0/8",
	})

	policy := `
path "aritma/token/*"      { capabilities = ["read"] }
path "aritma-prof/token/*" { capabilities = ["read"] }
path "growth/token/*"      { capabilities = ["read"] }
path "agents/token/*"      { capabilities = ["read"] }
path "agents20/token/*"    { capabilities = ["read"] }
path "probe/token/*"       { capabilities = ["read"] }
path "kv/*"                { capabilities = ["read"] }
path "ssh/creds/*"         { capabilities = ["update"] }
`
	if err := v.client.Sys().PutPolicy("bench", policy); err != nil {
		fatalf("writing the bench policy: %v", err)
	}
	s, err := v.client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"bench"}, TTL: "4h"})
	if err != nil {
		fatalf("creating the load token: %v", err)
	}
	e.loadToken = s.Auth.ClientToken
	return e
}

// leasePrefixes are the mounts whose reads create leases.
var leasePrefixes = []string{"ssh/creds/", "probe/token/", "aritma/token/", "aritma-prof/token/", "growth/token/"}

// revokeAll revokes the leases the load created, so that they do not pile
// up in Vault across rounds, and reports how long that took.
func (e *devEnv) revokeAll() float64 {
	var secs float64
	for _, p := range leasePrefixes {
		d, err := e.v.revokePrefix(p)
		if err != nil {
			logf("revoke-prefix %s: %v", p, err)
		}
		secs += d.Seconds()
	}
	return secs
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// pprofGet fetches path from a profiled plugin's socket into w.
func pprofGet(socket, path string, w io.Writer) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	resp, err := client.Get("http://plugin" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}
