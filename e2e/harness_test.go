//go:build e2e

// Package e2e runs the engine the way users do: registered in a real Vault
// server (the pinned build from scripts/build-vault.sh), read through the
// vault CLI and Vault Agent, against a real OAuth server (oidc-provider).
// make test runs it; it needs ARITMA_VAULT_BIN and the oauthserver's
// node_modules, which make installs.
package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/figures"
	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

const pluginName = testservers.PluginName

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
		// Without a Vault every test skips itself, saying why (requireVault),
		// so that go test reports skips instead of a silent pass.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "aritma-e2e-plugins-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		for _, version := range []string{"v0.1.0", "v0.1.1"} {
			out := filepath.Join(dir, version, pluginName)
			if err := testservers.BuildPlugin("..", version, out); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: building the plugin %s: %v\n", version, err)
				return 1
			}
			pluginBuilds[version] = out
		}
		if tofuBin != "" {
			providerMirror = filepath.Join(dir, "providers")
			if err := testservers.BuildProviderMirror("..", providerVersion, providerMirror); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: building the provider: %v\n", err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// requireVault skips a test that needs a Vault server when none was built.
func requireVault(t *testing.T) {
	t.Helper()
	if vaultBin == "" {
		t.Skip("ARITMA_VAULT_BIN is not set: run make e2e, which builds Vault and sets it")
	}
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

// noteSecret notes a secret for the scan of the test output
// (testservers.NoteSecret).
func noteSecret(secret string) { testservers.NoteSecret(secret) }

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
	port, err := testservers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// waitFor fails the test unless ok holds within timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	if err := testservers.WaitFor(timeout, what, ok); err != nil {
		t.Fatal(err)
	}
}

// tail is the end of a log, for failure messages.
func tail(path string) string { return testservers.Tail(path, 30) }

// startProcess starts a server that the test stops when it ends.
func startProcess(t *testing.T, logPath string, stdout io.Writer, env []string, name string, args ...string) *testservers.Process {
	t.Helper()
	p, err := testservers.Start(logPath, stdout, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

type oauthClient = testservers.OAuthClient

type oauthConfig = testservers.OAuthConfig

type oauthUser = testservers.OAuthUser

type oauthStats = testservers.OAuthStats

// oauthServer is the OAuth server a test started.
type oauthServer struct{ *testservers.OAuthServer }

// startOAuthServer starts oidc-provider issuing tokens that live tokenTTL seconds.
func startOAuthServer(t *testing.T, tokenTTL int, clients ...oauthClient) *oauthServer {
	t.Helper()
	return startOAuthServerConfig(t, oauthConfig{TokenTTL: tokenTTL, Clients: clients})
}

func startOAuthServerConfig(t *testing.T, c oauthConfig) *oauthServer {
	t.Helper()
	requireVault(t) // every test that starts one also starts Vault
	srv, err := testservers.StartOAuthServer(filepath.Join("oauthserver", "server.mjs"), t.TempDir(), c)
	if srv != nil {
		t.Cleanup(srv.Stop)
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(tail(srv.LogPath))
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return &oauthServer{srv}
}

func (s *oauthServer) stats(t *testing.T) oauthStats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type introspection struct {
	Active   bool   `json:"active"`
	Format   string `json:"format"` // from verify only: jwt or opaque
	Scope    string `json:"scope"`
	ClientID string `json:"client_id"`
	Sub      string `json:"sub"` // the bank customer, for the user-consent grants
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
	resp, err := s.HTTP.Do(req)
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
	c := s.Clients[0]
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
	resp, err := s.HTTP.Do(req)
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
type vaultServer struct{ *testservers.Vault }

// started wraps a server that testservers started (or failed to start):
// the test stops it when it ends.
func started(t *testing.T, v *testservers.Vault, err error) *vaultServer {
	t.Helper()
	if v != nil {
		t.Cleanup(v.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &vaultServer{v}
}

// startVaultDev starts `vault server -dev` with a plugin directory and a
// file audit device.
func startVaultDev(t *testing.T) *vaultServer {
	t.Helper()
	requireVault(t)
	tv, err := testservers.StartVaultDev(vaultBin, t.TempDir(), randomToken("root"))
	v := started(t, tv, err)
	if err := v.EnableFileAudit(); err != nil {
		t.Fatal(err)
	}
	return v
}

// startVaultPersistent starts a Vault server with file storage in dir (not
// dev mode), initialised on its first start, unsealed, with a file audit
// device.
func startVaultPersistent(t *testing.T, dir string) *vaultServer {
	t.Helper()
	requireVault(t)
	_, statErr := os.Stat(filepath.Join(dir, "audit.log"))
	tv, err := testservers.StartVaultFile(vaultBin, dir)
	v := started(t, tv, err)
	if statErr != nil {
		if err := v.EnableFileAudit(); err != nil { // the device persists across restarts
			t.Fatal(err)
		}
	}
	return v
}

// logFiles are the files a hygiene check scans.
func (v *vaultServer) logFiles() []string { return v.LogFiles() }

// cli runs the vault CLI against this server with the given token.
func (v *vaultServer) cli(token string, args ...string) (string, error) { return v.CLI(token, args...) }

// mustCLI runs the CLI as root and fails the test on an error.
func (v *vaultServer) mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := v.cli(v.Token, args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// registerPlugin registers the plugin build of version by SHA-256.
func (v *vaultServer) registerPlugin(t *testing.T, version string) {
	t.Helper()
	if err := v.RegisterPlugin(testservers.Plugin{Name: pluginName, Version: version, Binary: pluginBuilds[version]}); err != nil {
		t.Fatal(err)
	}
}

// enableAritma mounts the plugin at aritma/ through the HTTP API.
func (v *vaultServer) enableAritma(t *testing.T) {
	t.Helper()
	if err := v.Client.Sys().Mount("aritma", &api.MountInput{Type: pluginName}); err != nil {
		t.Fatalf("enabling the plugin: %v", err)
	}
}

// write writes through the HTTP API as root.
func (v *vaultServer) write(t *testing.T, path string, data map[string]interface{}) {
	t.Helper()
	if _, err := v.Client.Logical().Write(path, data); err != nil {
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

// agentConfigFor is the README's Vault Agent configuration
// (testservers.AgentExample) pointed at v, logging in with the token in
// tokenFile and rendering secretPath's access token into destination.
func agentConfigFor(t *testing.T, v *vaultServer, tokenFile, secretPath, destination string) string {
	t.Helper()
	config, err := testservers.AgentConfig("..", v.Addr, tokenFile, secretPath, destination)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// assertNoSecrets fails if any secret appears in any of the files or texts,
// as is or encoded (testservers.SecretForms).
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
			for _, form := range testservers.SecretForms(secret) {
				if strings.Contains(text, form) {
					found++
					t.Errorf("the %s appears in the output scanned (as %s)", what, describeForm(secret, form))
					break
				}
			}
		}
	}
}

// describeForm names a form of secret without showing it.
func describeForm(secret, form string) string {
	if form == secret {
		return "is"
	}
	return "an encoding of it"
}
