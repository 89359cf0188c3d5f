//go:build e2e

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// bankCustomer is a user of the test bank.
type bankCustomer struct{ username, password string }

// consentBank is the real OAuth server with bank customers, a client that
// may run the code, refresh and password grants, PKCE required, and
// 30-second access tokens.
func consentBank(t *testing.T, redirectURIs []string, customers ...bankCustomer) (*oauthServer, oauthClient) {
	t.Helper()
	client := oauthClient{
		ID: "accounts-client", Secret: randomSecret("accounts-secret"), AuthMethod: "client_secret_post",
		Scope: "bankservice", Format: "jwt", GrantTypes: []string{"authorization_code", "refresh_token", "password"},
		RedirectURIs: redirectURIs,
	}
	cfg := oauthConfig{TokenTTL: 30, AccessTokenTTL: 30, RequirePKCE: true, Clients: []oauthClient{client}}
	for _, c := range customers {
		cfg.Users = append(cfg.Users, oauthUser{Username: c.username, Password: c.password})
	}
	return startOAuthServerConfig(t, cfg), client
}

// setupAccounts mounts the engine on v, discovers the bank from its issuer,
// and writes role accounts for the bank's client with the given grants and
// redirect URIs.
func (v *vaultServer) setupAccounts(t *testing.T, bank *oauthServer, client oauthClient, grants string, redirects ...string) {
	t.Helper()
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/bank", map[string]interface{}{"issuer": bank.Issuer})
	v.write(t, "aritma/roles/accounts", map[string]interface{}{
		"environment": "bank", "client_id": client.ID, "client_secret": client.Secret,
		"allowed_grant_types": grants, "consent_scopes": "bankservice offline_access",
		"redirect_uris": strings.Join(redirects, ","), "min_remaining": "5s",
	})
}

// authorize starts a consent for creds/accounts/<name> and returns the
// authorization URL.
func (v *vaultServer) authorize(t *testing.T, name string, args ...string) string {
	t.Helper()
	out := v.mustCLI(t, append([]string{"write", "-f", "-format=json", "aritma/creds/accounts/" + name + "/authorize"}, args...)...)
	secret, err := api.ParseSecret(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return secret.Data["authorization_url"].(string)
}

// consentAt has the customer log in and answer at the bank, and returns
// where the bank redirects the browser; the code in it is noted as a secret.
func consentAt(t *testing.T, bank *oauthServer, authURL string, c bankCustomer, approve bool) *url.URL {
	t.Helper()
	redirect, err := bank.Consent(authURL, c.username, c.password, approve)
	if err != nil {
		t.Fatalf("consent at the bank: %v", err)
	}
	if code := redirect.Query().Get("code"); code != "" {
		noteSecret(code)
	}
	return redirect
}

// browse is the customer's browser arriving at Vault's callback: the page
// and its status.
func browse(t *testing.T, to *url.URL) (int, string) {
	t.Helper()
	resp, err := http.Get(to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(page)
}

// readCredential reads creds/accounts/<name> with the CLI; args are extra
// key=value parameters.
func (v *vaultServer) readCredential(t *testing.T, name string, args ...string) (*api.Secret, string, error) {
	t.Helper()
	out, err := v.cli(v.Token, append([]string{"read", "-format=json", "aritma/creds/accounts/" + name}, args...)...)
	if err != nil {
		return nil, out, err
	}
	secret, perr := api.ParseSecret(strings.NewReader(out))
	if perr != nil {
		t.Fatalf("parsing the CLI's JSON: %v\n%s", perr, out)
	}
	noteSecret(secret.Data["access_token"].(string))
	return secret, out, nil
}

func (v *vaultServer) credentialStatus(t *testing.T, name string) map[string]interface{} {
	t.Helper()
	out := v.mustCLI(t, "read", "-format=json", "aritma/creds/accounts/"+name+"/status")
	var s struct{ Data map[string]interface{} }
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	return s.Data
}

// The banks' user-consent grants, end to end against the real Vault and
// oidc-provider, the browser played by an HTTP client with a cookie jar:
// consent through Vault's callback and through the app, leased reads, a
// refresh that rotates the refresh token, consent withdrawn at the bank
// and given again, a denial, a replayed state, PKCE required by the bank,
// a refresh response lost on the way, the password grant, and delete
// revoking at the bank. No request for a refused state reaches the bank,
// and no token, code, password or secret reaches a log.
func TestE2E_CustomerConsent(t *testing.T) {
	requireVault(t)
	t.Parallel()
	kari := bankCustomer{"kari", randomSecret("kari-password")}
	ola := bankCustomer{"ola", randomSecret("ola-password")}
	per := bankCustomer{"per", randomSecret("per-password")}
	// The bank registers Vault's callback as the client's redirect URI.
	v := startVaultDev(t)
	callback := "http://" + v.Addr + "/v1/aritma/callback"
	appCallback := "http://127.0.0.1:9/app/callback"
	redirects := []string{callback, appCallback}
	bank, client := consentBank(t, redirects, kari, ola, per)
	v.setupAccounts(t, bank, client, "authorization_code,password", redirects...)
	secrets := map[string]string{"client secret": client.Secret, "kari's password": kari.password,
		"ola's password": ola.password, "per's password": per.password}
	stats := func() oauthStats { return bank.stats(t) }

	// Consent through Vault's callback: the customer sees the page.
	redirect := consentAt(t, bank, v.authorize(t, "kari"), kari, true)
	if got := redirect.Query().Get("iss"); got != bank.Issuer {
		t.Errorf("the bank's redirect has iss %q, want %q", got, bank.Issuer)
	}
	status, page := browse(t, redirect)
	if status != http.StatusOK || !strings.Contains(page, "Consent recorded") {
		t.Fatalf("Vault's callback answered %d:\n%s", status, page)
	}
	secret, out, err := v.readCredential(t, "kari")
	if err != nil {
		t.Fatalf("vault read aritma/creds/accounts/kari: %v\n%s", err, out)
	}
	token := secret.Data["access_token"].(string)
	if in := bank.verify(t, token); !in.Active || in.Sub != "kari" || in.ClientID != client.ID {
		t.Errorf("the bank sees kari's token as %+v", in)
	}
	if secret.LeaseDuration < 25 || secret.LeaseDuration > 29 || secret.Renewable {
		t.Errorf("lease %ds (renewable %v), want what a 30s token has left and not renewable", secret.LeaseDuration, secret.Renewable)
	}

	// A replayed callback: refused in Vault, nothing reaches the bank.
	before := stats().ByGrantType["authorization_code"]
	if status, page := browse(t, redirect); status != http.StatusBadRequest || !strings.Contains(page, "already used") {
		t.Errorf("the replayed callback answered %d:\n%s", status, page)
	}
	if after := stats().ByGrantType["authorization_code"]; after != before {
		t.Errorf("a replayed state reached the bank (%d exchanges, before %d)", after, before)
	}

	// A refresh, forced by min_remaining: the refresh token rotates.
	time.Sleep(2 * time.Second)
	secret, out, err = v.readCredential(t, "kari", "min_remaining=28")
	if err != nil {
		t.Fatalf("read with min_remaining=28: %v\n%s", err, out)
	}
	if secret.Data["access_token"] == token {
		t.Error("min_remaining beyond the cached token's life did not refresh it")
	}
	if s := stats(); s.ByGrantType["refresh_token"] != 1 || s.RefreshReuseDetected != 0 {
		t.Errorf("refreshes %d, reuses %d; want 1 and 0", s.ByGrantType["refresh_token"], s.RefreshReuseDetected)
	}

	// Consent through the app: it posts the whole redirect URL.
	redirect = consentAt(t, bank, v.authorize(t, "ola", "redirect_uri="+appCallback), ola, true)
	v.mustCLI(t, "write", "aritma/creds/accounts/ola", "callback_url="+redirect.String())
	if _, out, err := v.readCredential(t, "ola"); err != nil {
		t.Fatalf("read ola after the app-posted consent: %v\n%s", err, out)
	}

	// The customer withdraws consent at the bank: the next refresh is
	// refused, and the credential needs consent, in read, status and list.
	if err := bank.WithdrawConsent("kari"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	_, out, err = v.readCredential(t, "kari", "min_remaining=28")
	if err == nil || !strings.Contains(out, "needs consent") || !strings.Contains(out, "creds/accounts/kari/authorize") {
		t.Errorf("read after the withdrawal: %v\n%s", err, out)
	}
	if s := v.credentialStatus(t, "kari"); s["status"] != "needs_consent" {
		t.Errorf("status after the withdrawal: %v", s)
	}
	if list := v.mustCLI(t, "list", "-detailed", "aritma/creds/accounts/"); !strings.Contains(list, "needs_consent") {
		t.Errorf("list -detailed does not show needs_consent:\n%s", list)
	}
	// Consent again restores it.
	status, page = browse(t, consentAt(t, bank, v.authorize(t, "kari"), kari, true))
	if status != http.StatusOK {
		t.Fatalf("consent again: %d\n%s", status, page)
	}
	if _, out, err := v.readCredential(t, "kari"); err != nil {
		t.Errorf("read after consenting again: %v\n%s", err, out)
	}

	// A denial is recorded and shown.
	status, page = browse(t, consentAt(t, bank, v.authorize(t, "per"), per, false))
	if status != http.StatusBadRequest || !strings.Contains(page, "access_denied") {
		t.Errorf("the denied callback answered %d:\n%s", status, page)
	}
	if s := v.credentialStatus(t, "per"); s["status"] != "needs_consent" || !strings.Contains(jsonText(s["last_error"]), "access_denied") {
		t.Errorf("status after the denial: %v", s)
	}

	// PKCE is what the bank requires: a role without it is refused there.
	v.write(t, "aritma/roles/accounts", map[string]interface{}{"pkce": false})
	redirect, err = bank.Consent(v.authorize(t, "nopkce"), ola.username, ola.password, true)
	if err != nil || redirect.Query().Get("error") == "" {
		t.Errorf("without PKCE the bank redirected to %v (err %v), want an error", redirect, err)
	}
	v.write(t, "aritma/roles/accounts", map[string]interface{}{"pkce": true})

	// A refresh response lost on the way: the bank rotated, Vault never
	// heard. The read fails; it is not retried (that would replay the
	// spent token); the next refresh presents it once, the bank revokes
	// the grant, and the credential needs consent.
	if err := bank.DropNextRefresh(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if _, out, err := v.readCredential(t, "ola", "min_remaining=28"); err == nil {
		t.Errorf("the read whose refresh response was dropped succeeded:\n%s", out)
	}
	if s := stats(); s.RefreshReuseDetected != 0 || s.DroppedResponses != 1 {
		t.Errorf("after the dropped response: reuses %d, dropped %d; want 0 and 1", s.RefreshReuseDetected, s.DroppedResponses)
	}
	time.Sleep(2 * time.Second) // the failure pause (minGrantPause) holds renewals back
	_, out, err = v.readCredential(t, "ola", "min_remaining=28")
	if err == nil || !strings.Contains(out, "needs consent") {
		t.Errorf("the read after the lost rotation: %v\n%s", err, out)
	}
	if s := stats(); s.RefreshReuseDetected != 1 {
		t.Errorf("reuses %d, want exactly 1", s.RefreshReuseDetected)
	}

	// The password grant: run at once, only the refresh token kept.
	v.mustCLI(t, "write", "aritma/creds/accounts/per", "username=per", "password="+per.password)
	if s := v.credentialStatus(t, "per"); s["status"] != "active" || s["refresh_token_set"] != true || s["password_kept"] != false {
		t.Errorf("status after the password grant: %v", s)
	}
	if _, out, err := v.readCredential(t, "per"); err != nil {
		t.Errorf("read after the password grant: %v\n%s", err, out)
	}

	// Delete revokes the refresh token at the bank.
	revocations := stats().Revocations
	v.mustCLI(t, "delete", "aritma/creds/accounts/per")
	if got := stats().Revocations; got <= revocations {
		t.Errorf("the bank saw %d revocations after the delete, before %d", got, revocations)
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), bank.LogPath))
}

func jsonText(v interface{}) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}
