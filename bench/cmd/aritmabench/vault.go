package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// vaultServer is a Vault server the benchmark started on 127.0.0.1.
type vaultServer struct {
	Addr      string // host:port
	Token     string // root
	PluginDir string
	DataDir   string // file storage, "" for dev (in memory)
	LogPath   string
	client    *api.Client
	proc      *process
}

// startVaultDev starts `vault server -dev` with a plugin directory.
func startVaultDev(vaultBin, dir string) (*vaultServer, error) {
	v := &vaultServer{
		Addr:      mustFreeAddr(),
		Token:     "root-" + randomHex(8),
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, "vault.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "vault.hcl")
	// Prometheus retention keeps counters cumulative, for leaseCreations.
	hcl := fmt.Sprintf("plugin_directory = %q\ntelemetry {\n  prometheus_retention_time = \"24h\"\n  disable_hostname = true\n}\n", v.PluginDir)
	if err := os.WriteFile(config, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	return v, v.start(vaultBin, "server", "-dev", "-dev-no-store-token", "-dev-root-token-id="+v.Token,
		"-dev-listen-address="+v.Addr, "-config="+config, "-log-level=warn")
}

// startVaultFile starts a Vault server with file storage (what a small
// production server keeps its leases in), initialises and unseals it.
func startVaultFile(vaultBin, dir string) (*vaultServer, error) {
	v := &vaultServer{
		Addr:      mustFreeAddr(),
		PluginDir: filepath.Join(dir, "plugins"),
		DataDir:   filepath.Join(dir, "data"),
		LogPath:   filepath.Join(dir, "vault.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "vault.hcl")
	hcl := fmt.Sprintf(`
storage "file" {
  path = %q
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
api_addr         = "http://%s"
plugin_directory = %q
disable_mlock    = true
log_level        = "warn"
`, v.DataDir, v.Addr, v.Addr, v.PluginDir)
	if err := os.WriteFile(config, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	if err := v.start(vaultBin, "server", "-config="+config); err != nil {
		return nil, err
	}
	init, err := v.client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return nil, fmt.Errorf("vault operator init: %w", err)
	}
	if _, err := v.client.Sys().Unseal(init.Keys[0]); err != nil {
		return nil, fmt.Errorf("unseal: %w", err)
	}
	v.Token = init.RootToken
	v.client.SetToken(v.Token)
	return v, v.waitActive()
}

func (v *vaultServer) start(vaultBin string, args ...string) error {
	p, err := startProcess(v.LogPath, nil, nil, vaultBin, args...)
	if err != nil {
		return err
	}
	v.proc = p
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + v.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 5 * time.Minute
	if v.client, err = api.NewClient(cfg); err != nil {
		return err
	}
	v.client.SetToken(v.Token)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := v.client.Sys().SealStatus(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault did not answer in 60s\n%s", tail(v.LogPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.Token != "" {
		return v.waitActive()
	}
	return nil
}

func (v *vaultServer) waitActive() error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := v.client.Auth().Token().LookupSelf()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault not active after 60s: %v\n%s", err, tail(v.LogPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (v *vaultServer) pid() int { return v.proc.cmd.Process.Pid }

// registerPlugin copies binary into the plugin directory as name and
// registers it by SHA-256, with env for its process.
func (v *vaultServer) registerPlugin(name, binary string, env ...string) (string, error) {
	raw, err := os.ReadFile(binary)
	if err != nil {
		return "", err
	}
	path := filepath.Join(v.PluginDir, name)
	if err := os.WriteFile(path, raw, 0o755); err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	err = v.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    name,
		Type:    api.PluginTypeSecrets,
		Command: name,
		SHA256:  hex.EncodeToString(sum[:]),
		Env:     env,
	})
	if err != nil {
		return "", fmt.Errorf("registering %s: %w", name, err)
	}
	return path, nil
}

func (v *vaultServer) mount(path, typ, maxLeaseTTL string, options map[string]string) error {
	in := &api.MountInput{Type: typ, Options: options}
	if maxLeaseTTL != "" {
		in.Config.MaxLeaseTTL = maxLeaseTTL
	}
	if err := v.client.Sys().Mount(path, in); err != nil {
		return fmt.Errorf("mounting %s at %s: %w", typ, path, err)
	}
	return nil
}

func (v *vaultServer) write(path string, data map[string]interface{}) (*api.Secret, error) {
	s, err := v.client.Logical().Write(path, data)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}

func (v *vaultServer) mustWrite(path string, data map[string]interface{}) *api.Secret {
	s, err := v.write(path, data)
	if err != nil {
		fatalf("%v", err)
	}
	return s
}

// revokePrefix revokes every lease under prefix and waits until it is done.
func (v *vaultServer) revokePrefix(prefix string) (time.Duration, error) {
	start := time.Now()
	_, err := v.client.Logical().Write("sys/leases/revoke-prefix/"+prefix, map[string]interface{}{"sync": true})
	return time.Since(start), err
}

// get fetches a raw API path as root (used for /v1/sys/pprof/...).
func (v *vaultServer) get(path string, w io.Writer) error {
	req, _ := http.NewRequest(http.MethodGet, "http://"+v.Addr+"/v1/"+path, nil)
	req.Header.Set("X-Vault-Token", v.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// oauthServer is the e2e tests' oidc-provider server (e2e/oauthserver).
type oauthServer struct {
	TokenEndpoint string `json:"token_endpoint"`
	StatsEndpoint string `json:"stats_endpoint"`
	proc          *process
}

type oauthClient struct {
	ID         string `json:"client_id"`
	Secret     string `json:"client_secret"`
	AuthMethod string `json:"token_endpoint_auth_method"`
	Scope      string `json:"scope"`
	Format     string `json:"access_token_format"`
}

func newOAuthClient(id string) oauthClient {
	return oauthClient{ID: id, Secret: "bench-" + randomHex(12), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
}

// startOAuthServer starts server.mjs issuing tokens that live tokenTTL
// seconds and reads its ready line.
func startOAuthServer(serverScript, dir string, tokenTTL int, clients ...oauthClient) (*oauthServer, error) {
	config, _ := json.Marshal(map[string]interface{}{"port": 0, "token_ttl": tokenTTL, "clients": clients})
	configPath := filepath.Join(dir, fmt.Sprintf("oauth-%d.json", tokenTTL))
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, fmt.Sprintf("oauth-%d.log", tokenTTL))
	r, w := io.Pipe()
	p, err := startProcess(logPath, w, nil, "node", serverScript, configPath)
	if err != nil {
		return nil, err
	}
	srv := &oauthServer{proc: p}
	ready := make(chan error, 1)
	go func() {
		buf := make([]byte, 0, 1024)
		one := make([]byte, 1)
		for {
			if _, err := r.Read(one); err != nil {
				ready <- err
				return
			}
			if one[0] == '\n' {
				break
			}
			buf = append(buf, one[0])
		}
		ready <- json.Unmarshal(buf, srv)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("oauth server did not start: %v\n%s", err, tail(logPath, 20))
		}
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("oauth server did not start in 30s\n%s", tail(logPath, 20))
	}
	return srv, nil
}

type oauthStats struct {
	Grants   int            `json:"grants"`
	ByClient map[string]int `json:"by_client"`
	Failures int            `json:"failures"`
}

func (s *oauthServer) stats() (oauthStats, error) {
	var st oauthStats
	resp, err := http.Get(s.StatsEndpoint)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leaseCreations is how many leases Vault has created for reads under
// mount (e.g. "agents/"), from its vault.secret.lease.creation counter.
func (v *vaultServer) leaseCreations(mount string) (int, error) {
	resp, err := v.client.Logical().ReadRawWithData("sys/metrics", map[string][]string{"format": {"prometheus"}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "vault_secret_lease_creation{") || !strings.Contains(line, `mount_point="`+mount+`"`) {
			continue
		}
		fields := strings.Fields(line)
		var n float64
		if _, err := fmt.Sscanf(fields[len(fields)-1], "%g", &n); err == nil {
			total += n
		}
	}
	return int(total), nil
}
