//go:build e2e

// Package e2e runs the engine the way users do: registered in a real Vault
// server (the pinned build from scripts/build-vault.sh), read through the
// vault CLI and Vault Agent, against a real OAuth server (oidc-provider).
// make test runs it; it needs ARITMA_VAULT_BIN and the oauthserver's
// node_modules, which make installs.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/figures"
)

const pluginName = "vault-plugin-secrets-aritma"

var (
	vaultBin = os.Getenv("ARITMA_VAULT_BIN")
	// pluginBuilds maps a version to a plugin binary stamped with it.
	pluginBuilds = map[string]string{}
)

func TestMain(m *testing.M) {
	if vaultBin == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e: ARITMA_VAULT_BIN is not set; run make test")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: skipped, ARITMA_VAULT_BIN is not set; run make test")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "aritma-e2e-plugins-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		for _, version := range []string{"v0.1.0", "v0.1.1"} {
			out := filepath.Join(dir, version, pluginName)
			cmd := exec.Command("go", "build", "-o", out,
				"-ldflags", "-X github.com/aritma/vault-plugin-secrets-aritma/aritma.Version="+version, "..")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: building the plugin %s: %v\n", version, err)
				return 1
			}
			pluginBuilds[version] = out
		}
		return m.Run()
	}()
	os.Exit(code)
}

// randomSecret returns a distinctive client secret that tests later search
// logs for; it is noted for the scan of the test output (noteSecret).
func randomSecret(prefix string) string {
	secret := randomToken(prefix)
	noteSecret(secret)
	return secret
}

// randomToken returns a random string, for values that are not client
// secrets (Vault root tokens, which dev servers print in their own log).
func randomToken(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

var secretsMu sync.Mutex

// noteSecret appends a secret the tests used (client secret, private key
// line, access token) to ARITMA_SECRETS_FILE, which scripts/e2e.sh scans the
// test output for and then deletes.
func noteSecret(secret string) {
	path := os.Getenv("ARITMA_SECRETS_FILE")
	if path == "" || secret == "" {
		return
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(secret + "\n")
}

// recordFigure logs a figure and records it for the README's reliability
// section (scripts/reliability.sh).
func recordFigure(t *testing.T, name string, value interface{}) {
	t.Helper()
	t.Logf("figure %s = %v", name, value)
	if err := figures.Record(name, value); err != nil {
		t.Errorf("recording figure %s: %v", name, err)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// process is a server the test started; stop ends it and its children (the
// plugin processes Vault starts) by process group.
type process struct {
	cmd  *exec.Cmd
	done chan error
}

func startProcess(t *testing.T, logPath string, stdout io.Writer, env []string, name string, args ...string) *process {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		logFile.Close()
		if c, ok := stdout.(io.Closer); ok {
			c.Close()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after 15 seconds.
func (p *process) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Plugin processes left in the group after Vault exits.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// oauthClient is a client registered at the OAuth server.
type oauthClient struct {
	ID         string `json:"client_id"`
	Secret     string `json:"client_secret"`
	AuthMethod string `json:"token_endpoint_auth_method"`
	Scope      string `json:"scope"`
	Format     string `json:"access_token_format"`
}

type oauthServer struct {
	Issuer                string `json:"issuer"`
	TokenEndpoint         string `json:"token_endpoint"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	RevocationEndpoint    string `json:"revocation_endpoint"`
	StatsEndpoint         string `json:"stats_endpoint"`
	ResourceEndpoint      string `json:"resource_endpoint"`
	LogPath               string `json:"-"`
	clients               []oauthClient
	// http talks to the server; for an https server it trusts the server's CA.
	http *http.Client
}

// startOAuthServer starts oidc-provider issuing tokens that live tokenTTL seconds.
func startOAuthServer(t *testing.T, tokenTTL int, clients ...oauthClient) *oauthServer {
	t.Helper()
	return startOAuthServerConfig(t, oauthConfig{TokenTTL: tokenTTL, Clients: clients})
}

// oauthConfig configures the OAuth server beyond the plain case.
type oauthConfig struct {
	TokenTTL int
	Clients  []oauthClient
	// RawClients are client metadata as oidc-provider takes it, for
	// private_key_jwt and mTLS clients (jwks, jwks_uri, subject DNs).
	RawClients []map[string]interface{}
	// Extra goes into the server's config as is (tls, client_auth_methods).
	Extra map[string]interface{}
	// ServerCA is the CA of the server's https certificate, if it has one.
	ServerCA *x509.CertPool
}

func startOAuthServerConfig(t *testing.T, c oauthConfig) *oauthServer {
	t.Helper()
	dir := t.TempDir()
	all := []interface{}{}
	for _, client := range c.Clients {
		all = append(all, client)
	}
	for _, client := range c.RawClients {
		all = append(all, client)
	}
	cfg := map[string]interface{}{"port": 0, "token_ttl": c.TokenTTL, "clients": all}
	for k, v := range c.Extra {
		cfg[k] = v
	}
	config, _ := json.Marshal(cfg)
	configPath := filepath.Join(dir, "oauth.json")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		t.Fatal(err)
	}
	stdoutR, stdoutW := io.Pipe()
	srv := &oauthServer{LogPath: filepath.Join(dir, "oauth.log"), clients: c.Clients, http: http.DefaultClient}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(tail(srv.LogPath))
		}
	})
	if c.ServerCA != nil {
		srv.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ServerCA}}}
	}
	startProcess(t, srv.LogPath, stdoutW, nil, "node", filepath.Join("oauthserver", "server.mjs"), configPath)

	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdoutR).ReadString('\n')
		if err == nil {
			err = json.Unmarshal([]byte(line), srv)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("OAuth server did not start: %v\n%s", err, tail(srv.LogPath))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("OAuth server did not start in 30s\n%s", tail(srv.LogPath))
	}
	return srv
}

type oauthStats struct {
	Grants   int            `json:"grants"`
	ByClient map[string]int `json:"by_client"`
	Failures int            `json:"failures"`
	Errors   map[string]int `json:"errors"`
}

func (s *oauthServer) stats(t *testing.T) oauthStats {
	t.Helper()
	resp, err := s.http.Get(s.StatsEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st oauthStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

type introspection struct {
	Active   bool   `json:"active"`
	Format   string `json:"format"` // from verify only: jwt or opaque
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
}

// verify presents a token to the server's resource endpoint, as an app
// calling the bank API would: a JWT is checked by its signature, issuer,
// audience and exp, an opaque token by lookup.
func (s *oauthServer) verify(t *testing.T, token string) introspection {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.ResourceEndpoint, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in introspection
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		t.Fatal(err)
	}
	return in
}

// introspect asks the server's introspection endpoint (RFC 7662) about an
// opaque token, authenticating as its first client. (oidc-provider refuses
// to introspect its JWT access tokens; verify checks those.)
func (s *oauthServer) introspect(t *testing.T, token string) introspection {
	t.Helper()
	c := s.clients[0]
	form := url.Values{"token": {token}}
	req, _ := http.NewRequest(http.MethodPost, s.IntrospectionEndpoint, nil)
	if c.AuthMethod == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	} else {
		form.Set("client_id", c.ID)
		form.Set("client_secret", c.Secret)
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("introspection answered %s: %s", resp.Status, body)
	}
	var in introspection
	if err := json.NewDecoder(resp.Body).Decode(&in); err != nil {
		t.Fatal(err)
	}
	return in
}

// vaultServer is a Vault server started by the test, with the CLI and API
// pointed at it.
type vaultServer struct {
	Addr      string
	Token     string
	PluginDir string
	LogPath   string
	// AuditPath is the file audit device's log: every request and response,
	// with secret values HMAC'd, as Vault audits them.
	AuditPath string
	client    *api.Client
	proc      *process
	args      []string
}

// startVaultDev starts `vault server -dev` with a plugin directory.
func startVaultDev(t *testing.T) *vaultServer {
	t.Helper()
	dir := t.TempDir()
	v := &vaultServer{
		Addr:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		Token:     randomToken("root"),
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, "vault.log"),
		AuditPath: filepath.Join(dir, "audit.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "vault.hcl")
	writeFile(t, configPath, fmt.Sprintf("plugin_directory = %q\n", v.PluginDir))
	v.args = []string{"server", "-dev", "-dev-root-token-id=" + v.Token,
		"-dev-listen-address=" + v.Addr, "-config=" + configPath, "-log-level=debug"}
	v.start(t)
	v.enableAudit(t)
	return v
}

// enableAudit turns on a file audit device at v.AuditPath.
func (v *vaultServer) enableAudit(t *testing.T) {
	t.Helper()
	err := v.client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": v.AuditPath},
	})
	if err != nil {
		t.Fatalf("enabling the file audit device: %v", err)
	}
}

// logFiles are the files a hygiene check scans: Vault's log (the plugin's
// log is in it) and its audit log.
func (v *vaultServer) logFiles() []string {
	return []string{v.LogPath, v.AuditPath}
}

// startVaultPersistent starts a Vault server with file storage in dataDir
// (not dev mode), initialises it on first start, and unseals it.
func startVaultPersistent(t *testing.T, dir string) *vaultServer {
	t.Helper()
	v := &vaultServer{
		Addr:      fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		PluginDir: filepath.Join(dir, "plugins"),
		LogPath:   filepath.Join(dir, fmt.Sprintf("vault-%d.log", time.Now().UnixNano())),
		AuditPath: filepath.Join(dir, "audit.log"),
	}
	if err := os.MkdirAll(v.PluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "vault.hcl")
	writeFile(t, configPath, fmt.Sprintf(`
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
log_level        = "debug"
`, filepath.Join(dir, "data"), v.Addr, v.Addr, v.PluginDir))
	v.args = []string{"server", "-config=" + configPath}
	v.start(t)

	sys := v.client.Sys()
	keysPath := filepath.Join(dir, "init.json")
	var init api.InitResponse
	if raw, err := os.ReadFile(keysPath); err == nil {
		if err := json.Unmarshal(raw, &init); err != nil {
			t.Fatal(err)
		}
	} else {
		resp, err := sys.Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil {
			t.Fatalf("vault operator init: %v", err)
		}
		init = *resp
		raw, _ := json.Marshal(init)
		writeFile(t, keysPath, string(raw))
	}
	if _, err := sys.Unseal(init.Keys[0]); err != nil {
		t.Fatalf("unseal: %v", err)
	}
	v.Token = init.RootToken
	v.client.SetToken(v.Token)
	v.waitActive(t)
	if _, err := os.Stat(v.AuditPath); err != nil {
		v.enableAudit(t) // first start; the device persists across restarts
	}
	return v
}

func (v *vaultServer) start(t *testing.T) {
	t.Helper()
	v.proc = startProcess(t, v.LogPath, nil, nil, vaultBin, v.args...)
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + v.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(v.Token)
	v.client = client
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := client.Sys().SealStatus(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Vault did not answer in 60s\n%s", tail(v.LogPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v.Token != "" {
		v.waitActive(t)
	}
}

// waitActive waits until the server answers authenticated requests.
func (v *vaultServer) waitActive(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := v.client.Auth().Token().LookupSelf()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Vault not active after 60s: %v\n%s", err, tail(v.LogPath))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (v *vaultServer) stop() { v.proc.stop() }

// cli runs the vault CLI against this server with the given token.
func (v *vaultServer) cli(token string, args ...string) (string, error) {
	cmd := exec.Command(vaultBin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR=http://"+v.Addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// mustCLI runs the CLI as root and fails the test on an error.
func (v *vaultServer) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := v.cli(v.Token, args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// registerPlugin copies the plugin build of version into the plugin
// directory and registers it by SHA-256 through the HTTP API.
func (v *vaultServer) registerPlugin(t *testing.T, version string) {
	t.Helper()
	raw, err := os.ReadFile(pluginBuilds[version])
	if err != nil {
		t.Fatal(err)
	}
	command := pluginName + "-" + version
	if err := os.WriteFile(filepath.Join(v.PluginDir, command), raw, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	err = v.client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    pluginName,
		Type:    api.PluginTypeSecrets,
		Command: command,
		SHA256:  hex.EncodeToString(sum[:]),
		Version: version,
	})
	if err != nil {
		t.Fatalf("registering plugin %s: %v", version, err)
	}
}

// enableAritma mounts the plugin at aritma/ through the HTTP API.
func (v *vaultServer) enableAritma(t *testing.T) {
	t.Helper()
	if err := v.client.Sys().Mount("aritma", &api.MountInput{Type: pluginName}); err != nil {
		t.Fatalf("enabling the plugin: %v", err)
	}
}

// write writes through the HTTP API as root.
func (v *vaultServer) write(t *testing.T, path string, data map[string]interface{}) {
	t.Helper()
	if _, err := v.client.Logical().Write(path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// setupEngine registers v0.1.0, mounts it, and points an environment at the
// OAuth server.
func (v *vaultServer) setupEngine(t *testing.T, oauth *oauthServer, env, authMethod string) {
	t.Helper()
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/"+env, map[string]interface{}{
		"token_url":   oauth.TokenEndpoint,
		"auth_method": authMethod,
	})
}

// readTokenCLI runs `vault read -format=json aritma/token/<role>`.
func (v *vaultServer) readTokenCLI(t *testing.T, token, role string) *api.Secret {
	t.Helper()
	out, err := v.cli(token, "read", "-format=json", "aritma/token/"+role)
	if err != nil {
		t.Fatalf("vault read aritma/token/%s: %v\n%s", role, err, out)
	}
	secret, err := api.ParseSecret(strings.NewReader(out))
	if err != nil {
		t.Fatalf("parsing the CLI's JSON: %v", err)
	}
	if token, ok := secret.Data["access_token"].(string); ok {
		noteSecret(token)
	}
	return secret
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tail returns the last lines of a log, for failure messages. The logs hold
// no secrets (TestE2E tests assert that), so they are safe to print.
func tail(path string) string {
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "--- " + filepath.Base(path) + " ---\n" + strings.Join(lines, "\n")
}

// assertNoSecrets fails if any secret appears in any of the files or texts.
func assertNoSecrets(t *testing.T, secrets map[string]string, files []string, texts ...string) {
	t.Helper()
	scanned, found := 0, 0
	defer func() {
		recordFigure(t, "hygiene_bytes_scanned", scanned)
		recordFigure(t, "hygiene_secrets_found", found)
	}()
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("reading %s: %v", f, err)
			continue
		}
		if len(raw) == 0 {
			t.Errorf("%s is empty: nothing was scanned", f)
		}
		texts = append(texts, string(raw))
	}
	for _, text := range texts {
		scanned += len(text)
	}
	for what, secret := range secrets {
		for _, text := range texts {
			if strings.Contains(text, secret) {
				found++
				t.Errorf("the %s appears in clear in the output scanned", what)
			}
		}
	}
}
