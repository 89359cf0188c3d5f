package testservers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The user-consent grants of e2e/oauthserver, driven by a plain Go OAuth
// client (golang.org/x/oauth2) and Consent, as the engine will be.

// Never followed: Consent stops at the redirect to it.
const consentRedirectURI = "http://127.0.0.1:9/callback"

var oauthScript = filepath.Join("..", "..", "e2e", "oauthserver", "server.mjs")

func randomSecret(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// consentEnv is a started server, with the secrets its log must not hold.
type consentEnv struct {
	srv      *OAuthServer
	ctx      context.Context // carries srv.HTTP for the oauth2 library
	secret   string          // every client's secret
	password string          // alice's
	secrets  []string
}

// note remembers a secret (a password, a code, a token) for the log scan.
func (e *consentEnv) note(secrets ...string) {
	for _, s := range secrets {
		if s != "" {
			e.secrets = append(e.secrets, s)
			NoteSecret(s) // for scripts/e2e.sh's scan of the test output
		}
	}
}

// consentConfig has alice and bob, a code-grant client "web", a password
// client "app" that may refresh and one, "app-norefresh", that may not.
func consentConfig(secret, password string) OAuthConfig {
	client := func(id string, grants ...string) OAuthClient {
		c := OAuthClient{ID: id, Secret: secret, AuthMethod: "client_secret_basic", Scope: "api bankservice", Format: "jwt", GrantTypes: grants}
		if slices.Contains(grants, "authorization_code") {
			c.RedirectURIs = []string{consentRedirectURI}
		}
		return c
	}
	return OAuthConfig{
		TokenTTL:       3600,
		AccessTokenTTL: 600,
		Users: []OAuthUser{
			{Username: "alice", Password: password, Account: "acct-alice"},
			{Username: "bob", Password: password + "-bob"},
		},
		Clients: []OAuthClient{
			client("web", "authorization_code", "refresh_token"),
			client("app", "password", "refresh_token"),
			client("app-norefresh", "password"),
		},
	}
}

// startConsent starts the server with consentConfig changed by change, or
// skips the test if node or the oauthserver's node_modules are missing.
func startConsent(t *testing.T, change func(*OAuthConfig)) *consentEnv {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed: the OAuth server (e2e/oauthserver) needs it")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(oauthScript), "node_modules", "oidc-provider")); err != nil {
		t.Skip("e2e/oauthserver/node_modules is missing: run make oauth-server (npm ci --prefix e2e/oauthserver)")
	}
	e := &consentEnv{secret: randomSecret("client-secret"), password: randomSecret("password")}
	e.note(e.secret, e.password, e.password+"-bob")
	c := consentConfig(e.secret, e.password)
	if change != nil {
		change(&c)
	}
	srv, err := StartOAuthServer(oauthScript, t.TempDir(), c)
	if srv != nil {
		// Cleanups run last first: the server stops, then its log is read.
		t.Cleanup(func() {
			raw, _ := os.ReadFile(srv.LogPath)
			for i, secret := range e.secrets {
				for _, form := range SecretForms(secret) {
					if strings.Contains(string(raw), form) {
						t.Errorf("the server's log holds secret #%d of the test (not shown)", i)
						break
					}
				}
			}
			if t.Failed() {
				t.Log(Tail(srv.LogPath, 40))
			}
		})
		t.Cleanup(srv.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ctx = context.WithValue(context.Background(), oauth2.HTTPClient, srv.HTTP)
	return e
}

func (e *consentEnv) config(clientID string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: e.secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.srv.AuthorizationEndpoint,
			TokenURL:  e.srv.TokenEndpoint,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: consentRedirectURI,
		Scopes:      scopes,
	}
}

// authorize runs the code flow up to the redirect back to the client, as
// the engine does: PKCE (unless verifier is empty) and prompt=consent, which
// oidc-provider needs to grant offline_access.
func (e *consentEnv) authorize(t *testing.T, conf *oauth2.Config, verifier string, approve bool) url.Values {
	t.Helper()
	state := randomSecret("state")
	opts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "consent")}
	if verifier != "" {
		opts = append(opts, oauth2.S256ChallengeOption(verifier))
	}
	back, err := e.srv.Consent(conf.AuthCodeURL(state, opts...), "alice", e.password, approve)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Scheme + "://" + back.Host + back.Path; got != consentRedirectURI {
		t.Fatalf("redirected to %s, want the redirect_uri %s", got, consentRedirectURI)
	}
	q := back.Query()
	e.note(q.Get("code"))
	if q.Get("state") != state {
		t.Errorf("state = %q, want %q", q.Get("state"), state)
	}
	// RFC 9207: the issuer, exactly as in the discovery document.
	if q.Get("iss") != e.srv.Issuer {
		t.Errorf("iss = %q, want %q", q.Get("iss"), e.srv.Issuer)
	}
	return q
}

// login is the code flow with PKCE and offline_access, up to the tokens.
func (e *consentEnv) login(t *testing.T, conf *oauth2.Config) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(t, conf, verifier, true)
	if q.Get("code") == "" {
		t.Fatalf("no code in the authorization response: %v", q)
	}
	tok, err := conf.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	e.note(tok.AccessToken, tok.RefreshToken)
	return tok
}

func (e *consentEnv) refresh(conf *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	tok, err := conf.TokenSource(e.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err == nil {
		e.note(tok.AccessToken, tok.RefreshToken)
	}
	return tok, err
}

func (e *consentEnv) stats(t *testing.T) OAuthStats {
	t.Helper()
	st, err := e.srv.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

type me struct {
	Active   bool   `json:"active"`
	Format   string `json:"format"`
	ClientID string `json:"client_id"`
	Sub      string `json:"sub"`
	Scope    string `json:"scope"`
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
}

// me presents an access token to the server's resource endpoint.
func (e *consentEnv) me(t *testing.T, accessToken string) me {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.ResourceEndpoint, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := e.srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m me
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !m.Active {
		t.Fatalf("/api/me refused the access token: %s", resp.Status)
	}
	return m
}

func wantInvalidGrant(t *testing.T, what string, err error) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("%s: error = %v, want invalid_grant", what, err)
	}
}

// Machine clients' JSON is as before the consent fields were added.
func TestOAuthClient_ConsentFieldsOmittedForMachineClients(t *testing.T) {
	raw, _ := json.Marshal(OAuthClient{ID: "m", Secret: "s", AuthMethod: "client_secret_basic", Scope: "api", Format: "jwt"})
	want := `{"client_id":"m","client_secret":"s","token_endpoint_auth_method":"client_secret_basic","scope":"api","access_token_format":"jwt"}`
	if string(raw) != want {
		t.Errorf("JSON = %s, want %s", raw, want)
	}
}

// The code flow with PKCE and offline_access: the access token is a JWT for
// the bank API with the user's sub; every refresh rotates the refresh token,
// and a spent one presented again is invalid_grant, counted as reuse, and
// takes the new one with it (oidc-provider revokes the grant).
func TestOAuthConsent_CodeFlowRefreshRotatesAndDetectsReuse(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api", "offline_access")
	tok := e.login(t, conf)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	// expires_in is the access_token_ttl, not token_ttl.
	if left := time.Until(tok.Expiry); left < 590*time.Second || left > 600*time.Second {
		t.Errorf("the access token expires in %s, want 600s", left)
	}
	m := e.me(t, tok.AccessToken)
	if m.Format != "jwt" || m.Sub != "acct-alice" || m.Scope != "api" || m.ClientID != "web" || m.Exp-m.Iat != 600 {
		t.Errorf("/api/me = %+v, want a jwt for acct-alice, scope api, client web, 600s", m)
	}

	rotated, err := e.refresh(conf, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.RefreshToken == "" || rotated.RefreshToken == tok.RefreshToken {
		t.Fatal("the refresh did not rotate the refresh token")
	}
	if m := e.me(t, rotated.AccessToken); m.Sub != "acct-alice" || m.Scope != "api" {
		t.Errorf("/api/me after the refresh = %+v", m)
	}

	_, err = e.refresh(conf, tok.RefreshToken)
	wantInvalidGrant(t, "the spent refresh token", err)
	_, err = e.refresh(conf, rotated.RefreshToken)
	wantInvalidGrant(t, "the new refresh token after reuse", err)

	st := e.stats(t)
	if st.RefreshReuseDetected != 1 {
		t.Errorf("refresh_reuse_detected = %d, want 1", st.RefreshReuseDetected)
	}
	if st.ByGrantType["authorization_code"] != 1 || st.ByGrantType["refresh_token"] != 1 || st.Authorizations != 1 {
		t.Errorf("stats = %+v, want one code, one refresh, one authorization", st)
	}
	if st.Grants != 0 {
		t.Errorf("grants = %d, want 0 (client_credentials only)", st.Grants)
	}
}

// PKCE is verified when sent, also when not required.
func TestOAuthConsent_PKCEVerifiedWhenSent(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api")
	q := e.authorize(t, conf, oauth2.GenerateVerifier(), true)
	_, err := conf.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	wantInvalidGrant(t, "a wrong code_verifier", err)
}

// require_pkce refuses a code request without a code_challenge, before any
// login; flipped off at runtime, the same request gets a code.
func TestOAuthConsent_RequirePKCE(t *testing.T) {
	e := startConsent(t, func(c *OAuthConfig) { c.RequirePKCE = true })
	conf := e.config("web", "api")
	q := e.authorize(t, conf, "", true)
	if q.Get("error") != "invalid_request" || q.Get("code") != "" {
		t.Errorf("without code_challenge: %v, want error=invalid_request", q)
	}
	if !strings.Contains(q.Get("error_description"), "PKCE") {
		t.Errorf("error_description = %q", q.Get("error_description"))
	}

	if err := e.srv.SetRequirePKCE(false); err != nil {
		t.Fatal(err)
	}
	q = e.authorize(t, conf, "", true)
	tok, err := conf.Exchange(e.ctx, q.Get("code"))
	if err != nil {
		t.Fatal(err)
	}
	e.note(tok.AccessToken)
	if st := e.stats(t); st.AuthorizationErrors["invalid_request"] != 1 || st.Authorizations != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// Deny on the consent page is error=access_denied at the redirect_uri.
func TestOAuthConsent_DenyIsAccessDenied(t *testing.T) {
	e := startConsent(t, nil)
	q := e.authorize(t, e.config("web", "api", "offline_access"), oauth2.GenerateVerifier(), false)
	if q.Get("error") != "access_denied" || q.Get("code") != "" {
		t.Errorf("after deny: %v, want error=access_denied", q)
	}
	if st := e.stats(t); st.Denials != 1 || st.Authorizations != 0 {
		t.Errorf("denials = %d, authorizations = %d, want 1 and 0", st.Denials, st.Authorizations)
	}
}

// A wrong password shows the login page again (200, a message, no
// redirect); the right one then leads to the consent page.
func TestOAuthConsent_WrongPasswordReRendersLogin(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api")
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if _, err := e.srv.Consent(authURL, "alice", "wrong-password", true); !errors.Is(err, ErrLoginRefused) {
		t.Fatalf("Consent with a wrong password: %v, want ErrLoginRefused", err)
	}
	if _, err := e.srv.Consent(authURL, "nobody", e.password, true); !errors.Is(err, ErrLoginRefused) {
		t.Fatalf("Consent as an unknown user: %v, want ErrLoginRefused", err)
	}

	// The same by hand, as a browser would see it.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != strings.TrimPrefix(e.srv.Issuer, "http://") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	read := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	resp, page := read(client.Get(authURL))
	for _, id := range []string{`id="username"`, `id="password"`, `id="login"`, `name="username"`, `name="password"`} {
		if !strings.Contains(page, id) {
			t.Errorf("the login page lacks %s", id)
		}
	}
	action := formActions([]byte(page), resp.Request.URL)["login-form"]
	resp, page = read(client.PostForm(action, url.Values{"username": {"alice"}, "password": {"wrong-password"}}))
	// Request.Response is the redirect that led here, if any.
	if resp.StatusCode != http.StatusOK || resp.Request.Response != nil {
		t.Errorf("a wrong password: %s (redirected: %v), want 200 and no redirect", resp.Status, resp.Request.Response != nil)
	}
	if !strings.Contains(page, `id="message"`) || !strings.Contains(page, `id="login"`) {
		t.Errorf("the login page shown again lacks the message or the form:\n%s", page)
	}
	resp, page = read(client.PostForm(action, url.Values{"username": {"alice"}, "password": {e.password}}))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="approve"`) || !strings.Contains(page, `id="deny"`) {
		t.Errorf("after the right password: %s\n%s", resp.Status, page)
	}
}

// The password grant: a JWT access token for the bank API, a refresh token
// (rotating) only for offline_access and a client that may refresh, and
// invalid_grant for a wrong password.
func TestOAuthConsent_PasswordGrant(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("app", "api", "offline_access")
	tok, err := conf.PasswordCredentialsToken(e.ctx, "alice", e.password)
	if err != nil {
		t.Fatal(err)
	}
	e.note(tok.AccessToken, tok.RefreshToken)
	if m := e.me(t, tok.AccessToken); m.Sub != "acct-alice" || m.Scope != "api" || m.ClientID != "app" || m.Exp-m.Iat != 600 {
		t.Errorf("/api/me = %+v", m)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}
	rotated, err := e.refresh(conf, tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.RefreshToken == "" || rotated.RefreshToken == tok.RefreshToken {
		t.Error("the refresh did not rotate the refresh token")
	}
	if m := e.me(t, rotated.AccessToken); m.Sub != "acct-alice" || m.Scope != "api" {
		t.Errorf("/api/me after the refresh = %+v", m)
	}

	// bob has no account: his sub is his username.
	bob, err := conf.PasswordCredentialsToken(e.ctx, "bob", e.password+"-bob")
	if err != nil {
		t.Fatal(err)
	}
	e.note(bob.AccessToken, bob.RefreshToken)
	if m := e.me(t, bob.AccessToken); m.Sub != "bob" {
		t.Errorf("bob's sub = %q", m.Sub)
	}

	_, err = conf.PasswordCredentialsToken(e.ctx, "alice", "wrong-password")
	wantInvalidGrant(t, "a wrong password", err)

	for name, c := range map[string]*oauth2.Config{
		"without offline_access":        e.config("app", "api"),
		"a client that may not refresh": e.config("app-norefresh", "api", "offline_access"),
	} {
		tok, err := c.PasswordCredentialsToken(e.ctx, "alice", e.password)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e.note(tok.AccessToken, tok.RefreshToken)
		if tok.RefreshToken != "" {
			t.Errorf("%s: a refresh token was issued", name)
		}
	}
	if st := e.stats(t); st.ByGrantType["password"] != 4 || st.ByGrantType["refresh_token"] != 1 || st.Errors["invalid_grant"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

// password_grant_refresh_tokens false: no refresh token even for
// offline_access.
func TestOAuthConsent_PasswordGrantWithoutRefreshTokens(t *testing.T) {
	no := false
	e := startConsent(t, func(c *OAuthConfig) { c.PasswordGrantRefreshTokens = &no })
	tok, err := e.config("app", "api", "offline_access").PasswordCredentialsToken(e.ctx, "alice", e.password)
	if err != nil {
		t.Fatal(err)
	}
	e.note(tok.AccessToken, tok.RefreshToken)
	if tok.RefreshToken != "" {
		t.Error("a refresh token was issued")
	}
	if m := e.me(t, tok.AccessToken); m.Sub != "acct-alice" {
		t.Errorf("/api/me = %+v", m)
	}
}

// Withdrawn consent ends the refresh: invalid_grant.
func TestOAuthConsent_WithdrawConsentEndsRefresh(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api", "offline_access")
	tok := e.login(t, conf)
	if err := e.srv.WithdrawConsent("alice"); err != nil {
		t.Fatal(err)
	}
	_, err := e.refresh(conf, tok.RefreshToken)
	wantInvalidGrant(t, "a refresh after withdrawn consent", err)
	if err := e.srv.WithdrawConsent("nobody"); err == nil {
		t.Error("withdrawing an unknown user's consent did not fail")
	}
}

// A refresh token revoked at the revocation endpoint (RFC 7009) no longer
// refreshes.
func TestOAuthConsent_RevokeRefreshToken(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api", "offline_access")
	tok := e.login(t, conf)
	req, _ := http.NewRequest(http.MethodPost, e.srv.RevocationEndpoint,
		strings.NewReader(url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", e.secret)
	resp, err := e.srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revocation: %s", resp.Status)
	}
	_, err = e.refresh(conf, tok.RefreshToken)
	wantInvalidGrant(t, "a revoked refresh token", err)
	if st := e.stats(t); st.Revocations != 1 || st.RefreshReuseDetected != 0 {
		t.Errorf("revocations = %d, refresh_reuse_detected = %d, want 1 and 0", st.Revocations, st.RefreshReuseDetected)
	}
}

// A dropped refresh response is a network error for the client, while the
// server has rotated the token: the one the client still holds is spent.
func TestOAuthConsent_DropNextRefresh(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api", "offline_access")
	tok := e.login(t, conf)
	if err := e.srv.DropNextRefresh(); err != nil {
		t.Fatal(err)
	}
	_, err := e.refresh(conf, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("the dropped refresh: error = %v, want a network error", err)
	}
	if st := e.stats(t); st.ByGrantType["refresh_token"] != 1 || st.DroppedResponses != 1 {
		t.Errorf("stats = %+v, want one refresh processed and dropped", st)
	}
	_, err = e.refresh(conf, tok.RefreshToken)
	wantInvalidGrant(t, "the refresh token spent by the dropped refresh", err)
	if st := e.stats(t); st.RefreshReuseDetected != 1 {
		t.Errorf("refresh_reuse_detected = %d, want 1", st.RefreshReuseDetected)
	}
}

// The discovery document lists what the engine looks for; a machine-only
// server lists neither refresh_token nor password.
func TestOAuthConsent_Discovery(t *testing.T) {
	discover := func(e *consentEnv) (doc struct {
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		GrantTypes            []string `json:"grant_types_supported"`
		ChallengeMethods      []string `json:"code_challenge_methods_supported"`
		IssParameter          bool     `json:"authorization_response_iss_parameter_supported"`
	}) {
		resp, err := e.srv.HTTP.Get(e.srv.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return doc
	}
	e := startConsent(t, nil)
	doc := discover(e)
	if doc.AuthorizationEndpoint != e.srv.AuthorizationEndpoint || e.srv.AuthorizationEndpoint != e.srv.Issuer+"/connect/authorize" {
		t.Errorf("authorization_endpoint = %q, announced %q", doc.AuthorizationEndpoint, e.srv.AuthorizationEndpoint)
	}
	for _, g := range []string{"authorization_code", "refresh_token", "password", "client_credentials"} {
		if !slices.Contains(doc.GrantTypes, g) {
			t.Errorf("grant_types_supported %v lacks %s", doc.GrantTypes, g)
		}
	}
	if !slices.Equal(doc.ChallengeMethods, []string{"S256"}) || !doc.IssParameter {
		t.Errorf("code_challenge_methods_supported = %v, authorization_response_iss_parameter_supported = %v", doc.ChallengeMethods, doc.IssParameter)
	}

	machine := startConsent(t, func(c *OAuthConfig) {
		c.Users = nil
		c.Clients = []OAuthClient{{ID: "m", Secret: c.Clients[0].Secret, AuthMethod: "client_secret_basic", Scope: "api", Format: "jwt"}}
	})
	if doc := discover(machine); slices.Contains(doc.GrantTypes, "password") || slices.Contains(doc.GrantTypes, "refresh_token") {
		t.Errorf("a machine-only server lists %v", doc.GrantTypes)
	}
}

// oidc-provider drops offline_access from an authorization request without
// prompt=consent: the code then brings no refresh token.
func TestOAuthConsent_OfflineAccessNeedsPromptConsent(t *testing.T) {
	e := startConsent(t, nil)
	conf := e.config("web", "api", "offline_access")
	verifier := oauth2.GenerateVerifier()
	back, err := e.srv.Consent(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice", e.password, true)
	if err != nil {
		t.Fatal(err)
	}
	e.note(back.Query().Get("code"))
	tok, err := conf.Exchange(e.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	e.note(tok.AccessToken, tok.RefreshToken)
	if tok.RefreshToken != "" {
		t.Error("a refresh token without prompt=consent")
	}
	if m := e.me(t, tok.AccessToken); m.Scope != "api" || m.Sub != "acct-alice" {
		t.Errorf("/api/me = %+v", m)
	}
}

// client_credentials beside the consent grants: counted in grants and
// by_client as before, with sub the client_id; opaque tokens still verify.
func TestOAuthConsent_ClientCredentialsUnchanged(t *testing.T) {
	e := startConsent(t, func(c *OAuthConfig) {
		for _, format := range []string{"jwt", "opaque"} {
			c.Clients = append(c.Clients, OAuthClient{ID: "m-" + format, Secret: c.Clients[0].Secret, AuthMethod: "client_secret_basic", Scope: "api", Format: format})
		}
	})
	for _, format := range []string{"jwt", "opaque"} {
		cc := clientcredentials.Config{ClientID: "m-" + format, ClientSecret: e.secret, TokenURL: e.srv.TokenEndpoint, Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		e.note(tok.AccessToken)
		if tok.RefreshToken != "" {
			t.Errorf("%s: a refresh token for client_credentials", format)
		}
		if m := e.me(t, tok.AccessToken); m.Format != format || m.Sub != "m-"+format || m.ClientID != "m-"+format || m.Scope != "api" || m.Exp-m.Iat != 3600 {
			t.Errorf("/api/me = %+v, want a %s token of m-%s, scope api, token_ttl 3600s", m, format, format)
		}
	}
	st := e.stats(t)
	if st.Grants != 2 || st.ByClient["m-jwt"] != 1 || st.ByClient["m-opaque"] != 1 || st.ByGrantType["client_credentials"] != 2 {
		t.Errorf("stats = %+v", st)
	}
}

// refresh_token_ttl: an expired refresh token is invalid_grant.
func TestOAuthConsent_RefreshTokenExpires(t *testing.T) {
	e := startConsent(t, func(c *OAuthConfig) { c.RefreshTokenTTL = 1 })
	conf := e.config("web", "api", "offline_access")
	tok := e.login(t, conf)
	time.Sleep(2100 * time.Millisecond)
	_, err := e.refresh(conf, tok.RefreshToken)
	wantInvalidGrant(t, "an expired refresh token", err)
}

// SetClientSecret: the server takes the new secret from the next request
// and refuses the old one with invalid_client, as a bank after a rotation.
func TestOAuthServer_SetClientSecretRefusesTheOldOne(t *testing.T) {
	e := startConsent(t, func(c *OAuthConfig) {
		c.Clients = append(c.Clients, OAuthClient{ID: "m", Secret: c.Clients[0].Secret, AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"})
	})
	rotated := randomSecret("rotated-secret")
	e.note(rotated)
	grant := func(secret string) error {
		cc := clientcredentials.Config{ClientID: "m", ClientSecret: secret, TokenURL: e.srv.TokenEndpoint, Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(e.ctx)
		if err == nil {
			e.note(tok.AccessToken)
		}
		return err
	}
	if err := grant(e.secret); err != nil {
		t.Fatalf("before the rotation: %v", err)
	}
	if err := e.srv.SetClientSecret("m", rotated); err != nil {
		t.Fatal(err)
	}
	var rerr *oauth2.RetrieveError
	if err := grant(e.secret); !errors.As(err, &rerr) || rerr.ErrorCode != "invalid_client" {
		t.Errorf("the old secret after the rotation: %v, want invalid_client", err)
	}
	if err := grant(rotated); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if err := e.srv.SetClientSecret("nobody", rotated); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown client: %v, want 404", err)
	}
}
