//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Both auth methods through the real programs: register, enable and
// configure through the HTTP API, read with the vault CLI; the token is
// accepted by the server with the role's scopes (the JWT by signature at its
// resource endpoint, the opaque one also by introspection), and the lease
// lasts what the token has left and is not renewable.
func TestE2E_TokenForBothAuthMethods(t *testing.T) {
	t.Parallel()
	post := oauthClient{ID: "post-client", Secret: randomSecret("post-secret"), AuthMethod: "client_secret_post", Scope: "api bankservice IDENTITY", Format: "jwt"}
	basic := oauthClient{ID: "basic-client", Secret: randomSecret("basic-secret"), AuthMethod: "client_secret_basic", Scope: "api bankservice", Format: "opaque"}
	oauth := startOAuthServer(t, 3600, post, basic)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank-post", "client_secret_post")
	v.write(t, "aritma/environments/bank-basic", map[string]interface{}{"token_url": oauth.TokenEndpoint, "auth_method": "client_secret_basic"})

	cases := map[string]struct {
		client oauthClient
		env    string
		scopes string
	}{
		"client_secret_post, JWT token":     {client: post, env: "bank-post", scopes: "bankservice IDENTITY"},
		"client_secret_basic, opaque token": {client: basic, env: "bank-basic", scopes: "api"},
	}
	secrets := map[string]string{"post client secret": post.Secret, "basic client secret": basic.Secret}
	for name, tc := range cases {
		role := tc.client.ID
		v.write(t, "aritma/roles/"+role, map[string]interface{}{
			"environment": tc.env, "client_id": tc.client.ID, "client_secret": tc.client.Secret, "scopes": tc.scopes,
		})
		secret := v.readTokenCLI(t, v.Token, role)
		token, _ := secret.Data["access_token"].(string)
		secrets[name+" access token"] = token

		// What the token has left when the answer arrives: expires_in from a
		// second before the request, less the round trip, in whole seconds.
		if secret.LeaseDuration < 3596 || secret.LeaseDuration > 3599 {
			t.Errorf("%s: lease_duration = %d, want what the 3600s token has left (3596-3599)", name, secret.LeaseDuration)
		}
		if secret.Renewable {
			t.Errorf("%s: lease is renewable", name)
		}
		if !strings.HasPrefix(secret.LeaseID, "aritma/token/"+role+"/") {
			t.Errorf("%s: lease_id = %q", name, secret.LeaseID)
		}
		if secret.Data["token_type"] != "Bearer" || secret.Data["scope"] != tc.scopes {
			t.Errorf("%s: token_type %v scope %v, want Bearer %q", name, secret.Data["token_type"], secret.Data["scope"], tc.scopes)
		}
		if isJWT := strings.Count(token, ".") == 2; isJWT != (tc.client.Format == "jwt") {
			t.Errorf("%s: token looks like a JWT: %v, want %v", name, isJWT, tc.client.Format == "jwt")
		}
		in := oauth.verify(t, token)
		if !in.Active || in.Scope != tc.scopes || in.ClientID != tc.client.ID || in.Format != tc.client.Format {
			t.Errorf("%s: the resource server saw %+v, want an active %s token with scope %q for %s", name, in, tc.client.Format, tc.scopes, tc.client.ID)
		}
		if tc.client.Format == "opaque" {
			if in := oauth.introspect(t, token); !in.Active || in.Scope != tc.scopes || in.ClientID != tc.client.ID {
				t.Errorf("%s: introspection = %+v, want active with scope %q for %s", name, in, tc.scopes, tc.client.ID)
			}
		}
		if in.Exp-in.Iat != 3600 {
			t.Errorf("%s: the server issued a token for %ds, want 3600", name, in.Exp-in.Iat)
		}
		expiresAt, err := time.Parse(time.RFC3339, secret.Data["expires_at"].(string))
		if err != nil || expiresAt.Unix() > in.Exp || expiresAt.Unix() < in.Exp-2 {
			t.Errorf("%s: expires_at %v, the server's exp %d", name, secret.Data["expires_at"], in.Exp)
		}
	}
	if st := oauth.stats(t); st.Grants != 2 || st.ByClient["post-client"] != 1 || st.ByClient["basic-client"] != 1 {
		t.Errorf("server stats = %+v, want one grant per client", st)
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath))
}

// A token whose policy allows only aritma/token/app-a reads it and nothing else.
func TestE2E_PolicyLimitsAppToItsRole(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "app-client", Secret: randomSecret("app-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServer(t, 3600, client)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	for _, role := range []string{"app-a", "app-b"} {
		v.write(t, "aritma/roles/"+role, map[string]interface{}{
			"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api",
		})
	}
	v.mustCLI(t, "policy", "write", "app-a", writePolicy(t, `path "aritma/token/app-a" { capabilities = ["read"] }`))
	appToken := strings.TrimSpace(v.mustCLI(t, "token", "create", "-policy=app-a", "-field=token"))

	var outputs []string
	secret := v.readTokenCLI(t, appToken, "app-a")
	if token, _ := secret.Data["access_token"].(string); !oauth.verify(t, token).Active {
		t.Errorf("the app's token is not active at the server")
	}
	for _, args := range [][]string{
		{"read", "aritma/token/app-b"},
		{"read", "aritma/roles/app-a"},
		{"list", "aritma/roles"},
		{"read", "aritma/config"},
		{"read", "aritma/environments/bank"},
		{"write", "aritma/roles/app-a", "client_secret=stolen"},
	} {
		out, err := v.cli(appToken, args...)
		outputs = append(outputs, out)
		if err == nil || !strings.Contains(out, "Code: 403") {
			t.Errorf("vault %s as app-a: want 403, got err=%v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Even root's reads show no secret outside token/.
	for _, path := range []string{"aritma/roles/app-a", "aritma/environments/bank", "aritma/config"} {
		out, err := v.cli(v.Token, "read", "-format=json", path)
		if err != nil {
			t.Fatalf("root read %s: %v\n%s", path, err, out)
		}
		outputs = append(outputs, out)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret}, append(v.logFiles(), oauth.LogPath), outputs...)
}

func writePolicy(t *testing.T, policy string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.hcl")
	writeFile(t, path, policy)
	return path
}

// Vault Agent re-renders a new token before the old one expires, over at
// least three token lifetimes, without a re-read loop: every rendered token
// is active at the server when rendered, and each grant is a render.
func TestE2E_VaultAgentRerendersBeforeExpiry(t *testing.T) {
	t.Parallel()
	const lifetime = 20 // seconds
	client := oauthClient{ID: "agent-client", Secret: randomSecret("agent-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServer(t, lifetime, client)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	v.write(t, "aritma/roles/agent", map[string]interface{}{
		"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api",
	})
	v.mustCLI(t, "policy", "write", "agent", writePolicy(t, `path "aritma/token/agent" { capabilities = ["read"] }`))
	appToken := strings.TrimSpace(v.mustCLI(t, "token", "create", "-policy=agent", "-field=token"))

	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "app-token")
	rendered := filepath.Join(dir, "access_token")
	writeFile(t, tokenFile, appToken)
	agentConfig := filepath.Join(dir, "agent.hcl")
	writeFile(t, agentConfig, agentConfigFor(t, v, tokenFile, "aritma/token/agent", rendered))
	agentLog := filepath.Join(dir, "agent.log")
	startProcess(t, agentLog, nil, []string{"VAULT_TOKEN="}, vaultBin, "agent", "-config="+agentConfig, "-log-level=debug")

	// From the first render, watch the file for three lifetimes and a bit:
	// the agent re-reads after 85-95% of each 20 s lease, so at least three
	// new tokens must appear.
	var renders []string
	last, lastExp := "", time.Time{}
	minMargin := time.Duration(-1)
	var deadline time.Time
	started := time.Now()
	for deadline.IsZero() || time.Now().Before(deadline) {
		if deadline.IsZero() && time.Since(started) > 60*time.Second {
			t.Fatalf("the agent rendered nothing in 60s\n%s", tail(agentLog))
		}
		raw, _ := os.ReadFile(rendered)
		if token := string(raw); token != "" && token != last {
			seenAt := time.Now()
			in := oauth.verify(t, token)
			if !in.Active {
				t.Errorf("render %d is not active at the server when rendered", len(renders)+1)
			} else if left := time.Until(time.Unix(in.Exp, 0)); left < time.Second {
				t.Errorf("render %d had only %s left", len(renders)+1, left)
			}
			// The point of the re-read: the new token is in the file while
			// the previous one still lives, by this much.
			if last != "" {
				margin := lastExp.Sub(seenAt)
				if margin <= 0 {
					t.Errorf("render %d came %s after the previous token expired", len(renders)+1, -margin)
				}
				if minMargin < 0 || margin < minMargin {
					minMargin = margin
				}
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(3*lifetime*time.Second + 5*time.Second)
			}
			renders = append(renders, token)
			last, lastExp = token, time.Unix(in.Exp, 0)
		}
		time.Sleep(100 * time.Millisecond)
	}
	recordFigure(t, "agent_renders", len(renders))
	recordFigure(t, "agent_min_margin_ms", minMargin.Milliseconds())
	grants := oauth.stats(t).Grants
	t.Logf("Vault Agent over %ds after its first render, with %ds tokens: %d renders, %d grants at the server", 3*lifetime+5, lifetime, len(renders), grants)
	if len(renders) < 4 {
		t.Errorf("the agent rendered %d tokens, want the first and at least 3 more\n%s", len(renders), tail(agentLog))
	}
	if grants > len(renders)+1 {
		t.Errorf("%d grants for %d renders: the agent re-reads in a loop", grants, len(renders))
	}
	secrets := map[string]string{"client secret": client.Secret}
	for i, token := range renders {
		noteSecret(token)
		secrets[fmt.Sprintf("rendered token %d", i+1)] = token
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath, agentLog))
}

// A Vault server with file storage keeps roles and environments across a
// restart, and the next read after it issues a token.
func TestE2E_PersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "persist-client", Secret: randomSecret("persist-secret"), AuthMethod: "client_secret_basic", Scope: "api bankservice", Format: "opaque"}
	oauth := startOAuthServer(t, 3600, client)
	dir := t.TempDir()
	v := startVaultPersistent(t, dir)
	v.setupEngine(t, oauth, "bank", "client_secret_basic")
	v.write(t, "aritma/roles/keep", map[string]interface{}{
		"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "bankservice",
	})
	v.write(t, "aritma/config", map[string]interface{}{"default_environment": "bank"})
	before := readAll(t, v)
	v.readTokenCLI(t, v.Token, "keep")
	v.Stop()

	v2 := startVaultPersistent(t, dir)
	if after := readAll(t, v2); after != before {
		t.Errorf("configuration changed across the restart:\nbefore %s\nafter  %s", before, after)
	}
	secret := v2.readTokenCLI(t, v2.Token, "keep")
	if token, _ := secret.Data["access_token"].(string); !oauth.verify(t, token).Active {
		t.Error("the token read after the restart is not active")
	}
	if grants := oauth.stats(t).Grants; grants != 2 {
		t.Errorf("grants = %d, want 2: the restart starts with an empty cache", grants)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "access token": secret.Data["access_token"].(string)},
		append(v2.logFiles(), v.LogPath, oauth.LogPath))
}

// readAll renders every config, environment and role the mount holds.
func readAll(t *testing.T, v *vaultServer) string {
	t.Helper()
	all := map[string]interface{}{}
	for _, list := range []string{"aritma/roles", "aritma/environments"} {
		secret, err := v.Client.Logical().List(list)
		if err != nil || secret == nil {
			t.Fatalf("list %s: %v", list, err)
		}
		for _, key := range secret.Data["keys"].([]interface{}) {
			path := list + "/" + key.(string)
			s, err := v.Client.Logical().Read(path)
			if err != nil || s == nil {
				t.Fatalf("read %s: %v", path, err)
			}
			all[path] = s.Data
		}
	}
	cfg, err := v.Client.Logical().Read("aritma/config")
	if err != nil {
		t.Fatal(err)
	}
	all["aritma/config"] = cfg.Data
	raw, _ := json.Marshal(all)
	return string(raw)
}

// A plugin reload and an upgrade to a newly registered version keep all
// configuration, and the mount then runs the new version.
func TestE2E_PluginReloadAndUpgrade(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "upgrade-client", Secret: randomSecret("upgrade-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServer(t, 3600, client)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	v.write(t, "aritma/roles/r", map[string]interface{}{
		"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api",
	})
	before := readAll(t, v)
	v.readTokenCLI(t, v.Token, "r")

	v.mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitRunningVersion(t, v, "v0.1.0")
	if after := readAll(t, v); after != before {
		t.Errorf("reload changed the configuration:\nbefore %s\nafter  %s", before, after)
	}
	v.readTokenCLI(t, v.Token, "r")

	v.registerPlugin(t, "v0.1.1")
	v.mustCLI(t, "secrets", "tune", "-plugin-version=v0.1.1", "aritma/")
	v.mustCLI(t, "plugin", "reload", "-type=secret", "-plugin="+pluginName)
	waitRunningVersion(t, v, "v0.1.1")
	if listing := v.mustCLI(t, "secrets", "list", "-detailed"); !strings.Contains(listing, "v0.1.1") {
		t.Errorf("vault secrets list -detailed does not show v0.1.1:\n%s", listing)
	}
	if after := readAll(t, v); after != before {
		t.Errorf("the upgrade changed the configuration:\nbefore %s\nafter  %s", before, after)
	}
	secret := v.readTokenCLI(t, v.Token, "r")
	if token, _ := secret.Data["access_token"].(string); !oauth.verify(t, token).Active {
		t.Error("the token read after the upgrade is not active")
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "access token": secret.Data["access_token"].(string)},
		append(v.logFiles(), oauth.LogPath))
}

// waitRunningVersion waits for the mount to report version (a reload is
// asynchronous).
func waitRunningVersion(t *testing.T, v *vaultServer, version string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the mount to run "+version, func() bool {
		mount, err := v.Client.Sys().GetMount("aritma")
		return err == nil && mount.RunningVersion == version
	})
}

// A wrong client secret gives the reader a clear error with the server's
// invalid_client, and no secret anywhere: not in the error, not in Vault's
// log, not in the OAuth server's log.
func TestE2E_WrongSecretGivesInvalidClient(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "real-client", Secret: randomSecret("real-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	wrong := randomSecret("wrong-secret")
	oauth := startOAuthServer(t, 3600, client)
	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	v.write(t, "aritma/roles/wrong", map[string]interface{}{
		"environment": "bank", "client_id": client.ID, "client_secret": wrong, "scopes": "api",
	})
	out, err := v.cli(v.Token, "read", "aritma/token/wrong")
	if err == nil {
		t.Fatalf("read with a wrong secret succeeded:\n%s", out)
	}
	// 400, not a 5xx: Vault's clients retry 5xx, and this refusal would repeat.
	for _, want := range []string{"Code: 400", "401 Unauthorized", "invalid_client", oauth.TokenEndpoint} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not contain %q:\n%s", want, out)
		}
	}
	// The role now pauses (2 s after one failure): the next read gets the
	// same error without a request to the server.
	_, apiErr := v.Client.Logical().Read("aritma/token/wrong")
	var respErr *api.ResponseError
	if !errors.As(apiErr, &respErr) || respErr.StatusCode != 400 || !strings.Contains(apiErr.Error(), "invalid_client") {
		t.Errorf("HTTP API error = %v, want a 400 with invalid_client", apiErr)
	}
	if st := oauth.stats(t); st.Errors["invalid_client"] != 1 || st.Grants != 0 {
		t.Errorf("server stats = %+v, want 1 invalid_client failure (no retries, then a pause)", st)
	}
	assertNoSecrets(t, map[string]string{"wrong client secret": wrong, "real client secret": client.Secret},
		append(v.logFiles(), oauth.LogPath), out)
}
