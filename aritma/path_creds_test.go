package aritma

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
)

// fakeBank is an authorization server for the user-consent grants: it
// issues codes for PKCE challenges, exchanges them once, rotates refresh
// tokens on every use (a reused one revokes the grant, as oidc-provider
// does), runs the password grant, and revokes refresh tokens.
type fakeBank struct {
	*fakeAuthServer
	mu         sync.Mutex
	codes      map[string]string // code -> its challenge
	refresh    map[string]bool   // live refresh tokens
	spent      map[string]bool   // rotated away
	revoked    []string
	issued     int
	reuses     int
	refuseWith string // an error code the refresh grant answers, if set
	failWith   int    // an HTTP status (5xx) the refresh grant answers, if set
	noRefresh  bool   // issue no refresh tokens
	tokenType  string // token_type of access tokens (default Bearer)
	expiresIn  int
	onRefresh  func()
}

const (
	testUsername = "kari.nordmann"
	testPassword = "pa55word-9d2c41-do-not-leak"
)

func newFakeBank(t testing.TB) *fakeBank {
	t.Helper()
	b := &fakeBank{fakeAuthServer: newFakeAuthServer(t), codes: map[string]string{}, refresh: map[string]bool{},
		spent: map[string]bool{}, expiresIn: 600}
	b.respond = b.serve
	return b
}

func (b *fakeBank) authorizeURL() string { return b.URL + "/connect/authorize" }

// issueCode is the bank's side of the consent: a code for the challenge.
func (b *fakeBank) issueCode(challenge string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.issued++
	code := fmt.Sprintf("code-%d-9f8e7d", b.issued)
	b.codes[code] = challenge
	return code
}

func (b *fakeBank) tokens(w http.ResponseWriter, scope string) {
	b.issued++
	tokenType := b.tokenType
	if tokenType == "" {
		tokenType = "Bearer"
	}
	answer := map[string]interface{}{
		"access_token": fmt.Sprintf("customer-access-%d", b.issued), "token_type": tokenType,
		"expires_in": b.expiresIn, "scope": scope,
	}
	if !b.noRefresh {
		rt := fmt.Sprintf("refresh-%d-5b6a7c8d", b.issued)
		b.refresh[rt] = true
		answer["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, answer)
}

func (b *fakeBank) serve(w http.ResponseWriter, r *http.Request, _ int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	refuse := func(code string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": "refused by the fake bank"})
	}
	if r.URL.Path == "/connect/revocation" {
		b.revoked = append(b.revoked, r.PostForm.Get("token")+" "+r.PostForm.Get("token_type_hint"))
		delete(b.refresh, r.PostForm.Get("token"))
		w.WriteHeader(http.StatusOK)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		challenge, ok := b.codes[r.PostForm.Get("code")]
		delete(b.codes, r.PostForm.Get("code"))
		if !ok || (challenge != "" && oauth2.S256ChallengeFromVerifier(r.PostForm.Get("code_verifier")) != challenge) {
			refuse("invalid_grant")
			return
		}
		b.tokens(w, "bankservice offline_access")
	case "refresh_token":
		if b.onRefresh != nil {
			b.onRefresh()
		}
		rt := r.PostForm.Get("refresh_token")
		switch {
		case b.failWith != 0:
			w.WriteHeader(b.failWith)
		case b.refuseWith != "":
			refuse(b.refuseWith)
		case b.spent[rt]:
			b.reuses++
			refuse("invalid_grant")
		case !b.refresh[rt]:
			refuse("invalid_grant")
		default:
			delete(b.refresh, rt)
			b.spent[rt] = true
			b.tokens(w, "bankservice offline_access")
		}
	case "password":
		if r.PostForm.Get("username") != testUsername || r.PostForm.Get("password") != testPassword {
			refuse("invalid_grant")
			return
		}
		b.tokens(w, r.PostForm.Get("scope"))
	default:
		refuse("unsupported_grant_type")
	}
}

func (b *fakeBank) grantsOf(grantType string) int {
	n := 0
	for i := 0; i < b.count(); i++ {
		if b.request(i).Form.Get("grant_type") == grantType {
			n++
		}
	}
	return n
}

// setupConsentRole writes an environment at bank and a role "acct" that
// allows authorization_code and password.
func (e *testEnv) setupConsentRole(t testing.TB, bank *fakeBank, extra map[string]interface{}) {
	t.Helper()
	e.mustWrite(t, "environments/bank", map[string]interface{}{
		"token_url": bank.tokenURL(), "authorization_url": bank.authorizeURL(), "revocation_url": bank.URL + "/connect/revocation",
	})
	data := map[string]interface{}{
		"environment": "bank", "client_id": "acct-client", "client_secret": testClientSecret,
		"allowed_grant_types": "authorization_code,password", "redirect_uris": "https://app.example/callback",
		"consent_scopes": "bankservice offline_access",
	}
	for k, v := range extra {
		data[k] = v
	}
	e.mustWrite(t, "roles/acct", data)
}

// consent runs a customer's consent for creds/acct/<name> with the
// app-posted finish, and returns the authorization URL's query.
func (e *testEnv) consent(t testing.TB, bank *fakeBank, name string) url.Values {
	t.Helper()
	resp := e.do(t, logical.UpdateOperation, "creds/acct/"+name+"/authorize", nil)
	if resp == nil || resp.IsError() {
		t.Fatalf("authorize: %v", respError(resp))
	}
	u, err := url.Parse(resp.Data["authorization_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	code := bank.issueCode(q.Get("code_challenge"))
	if resp := e.write(t, "creds/acct/"+name, map[string]interface{}{"code": code, "state": q.Get("state")}); resp != nil && resp.IsError() {
		t.Fatalf("finishing the consent: %v", resp.Error())
	}
	return q
}

func (e *testEnv) readCredential(t *testing.T, name string) (*logical.Response, error) {
	t.Helper()
	return e.request(logical.ReadOperation, "creds/acct/"+name, nil)
}

func (e *testEnv) storedCredential(t *testing.T, name string) *credentialEntry {
	t.Helper()
	cred, err := getCredential(context.Background(), e.storage, "acct", name)
	if err != nil || cred == nil {
		t.Fatalf("credential %s: %v (nil: %v)", name, err, cred == nil)
	}
	return cred
}

// The consent request carries what RFC 6749, RFC 7636 and OpenID Connect
// ask for; the exchange proves the PKCE verifier; the read is a lease like
// token/'s; a renewal rotates the refresh token and stores the new one.
func TestCreds_ConsentLeaseAndRotation(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	q := e.consent(t, bank, "kari")
	for param, want := range map[string]string{
		"response_type": "code", "client_id": "acct-client", "redirect_uri": "https://app.example/callback",
		"scope": "bankservice offline_access", "code_challenge_method": "S256", "prompt": "consent",
	} {
		if got := q.Get(param); got != want {
			t.Errorf("authorization request %s = %q, want %q", param, got, want)
		}
	}
	if len(q.Get("state")) < 43 || len(q.Get("code_challenge")) != 43 {
		t.Errorf("state %q or code_challenge %q is too short", q.Get("state"), q.Get("code_challenge"))
	}
	exchange := bank.request(0)
	if exchange.Form.Get("grant_type") != "authorization_code" || exchange.Form.Get("code_verifier") == "" ||
		exchange.Form.Get("redirect_uri") != "https://app.example/callback" {
		t.Errorf("the exchange sent %v", exchange.Form)
	}

	resp, err := e.readCredential(t, "kari")
	if err != nil || resp.IsError() {
		t.Fatalf("read: %v %v", err, respError(resp))
	}
	if resp.Data["access_token"] != "customer-access-2" || resp.Secret == nil || resp.Secret.Renewable {
		t.Fatalf("read = %v, secret %+v; want the first access token in a non-renewable lease", resp.Data, resp.Secret)
	}
	if ttl := resp.Secret.TTL; ttl < 598*time.Second || ttl > 599*time.Second {
		t.Errorf("lease TTL %s, want what the 600s token has left (599s)", ttl)
	}
	first := e.storedCredential(t, "kari").RefreshToken

	// Within min_remaining of expiry: one refresh, with the stored token,
	// and the rotated one is stored.
	e.clock.Advance(541 * time.Second)
	resp, err = e.readCredential(t, "kari")
	if err != nil || resp.IsError() {
		t.Fatalf("read after expiry: %v %v", err, respError(resp))
	}
	if resp.Data["access_token"] == "customer-access-2" {
		t.Error("the read after min_remaining still served the old token")
	}
	if got := bank.grantsOf("refresh_token"); got != 1 {
		t.Errorf("%d refreshes, want 1", got)
	}
	cred := e.storedCredential(t, "kari")
	if cred.RefreshToken == first || cred.RefreshToken == "" || bank.request(1).Form.Get("refresh_token") != first {
		t.Errorf("the refresh sent %q and stored %q; want the first token sent and a new one stored",
			bank.request(1).Form.Get("refresh_token"), cred.RefreshToken)
	}
	if bank.reuses != 0 {
		t.Errorf("the bank saw %d reused refresh tokens", bank.reuses)
	}
}

// Fifty readers at an expired token: one refresh serves them all.
func TestCreds_ConcurrentReadersOneRefresh(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.readCredential(t, "kari")
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := bank.grantsOf("refresh_token"); got != 1 || bank.reuses != 0 {
		t.Errorf("50 readers made %d refreshes (%d reuses), want 1 (0)", got, bank.reuses)
	}
}

// The state is single-use, checked before anything reaches the bank, and
// lasts ten minutes.
func TestCreds_StateSpentBeforeTheExchange(t *testing.T) {
	for name, tc := range map[string]struct {
		state   func(valid string) string
		advance time.Duration
		replay  bool
		want    string
	}{
		"unknown state": {state: func(string) string { return "forged-state" }, want: "unknown, already used or expired"},
		"expired state": {state: func(s string) string { return s }, advance: consentTimeout + time.Second, want: "unknown, already used or expired"},
		"replayed":      {state: func(s string) string { return s }, replay: true, want: "unknown, already used or expired"},
		"missing state": {state: func(string) string { return "" }, want: "state is missing"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			bank := newFakeBank(t)
			e.setupConsentRole(t, bank, nil)
			resp := e.do(t, logical.UpdateOperation, "creds/acct/kari/authorize", nil)
			u, _ := url.Parse(resp.Data["authorization_url"].(string))
			code := bank.issueCode(u.Query().Get("code_challenge"))
			state := tc.state(u.Query().Get("state"))
			e.clock.Advance(tc.advance)
			exchanges := 0
			if tc.replay {
				e.mustWrite(t, "creds/acct/kari", map[string]interface{}{"code": code, "state": state})
				exchanges = 1
			}
			resp = e.write(t, "creds/acct/kari", map[string]interface{}{"code": code, "state": state})
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.want) {
				t.Errorf("finish = %v, want an error saying %q", respError(resp), tc.want)
			}
			if got := bank.grantsOf("authorization_code"); got != exchanges {
				t.Errorf("%d exchanges reached the bank, want %d", got, exchanges)
			}
		})
	}
}

// The bank's redirect to the mount's callback finishes the consent and
// answers the browser with a page; a denial and a mixed-up issuer are
// recorded and shown, and nothing is exchanged for them.
func TestCreds_CallbackPage(t *testing.T) {
	for name, tc := range map[string]struct {
		query      func(q url.Values, code string) map[string]interface{}
		wantStatus int
		wantPage   string
		wantCred   string // the credential's status afterwards; "" for none
	}{
		"consent": {
			query: func(q url.Values, code string) map[string]interface{} {
				return map[string]interface{}{"code": code, "state": q.Get("state")}
			},
			wantStatus: 200, wantPage: "Consent recorded", wantCred: credActive,
		},
		"denied": {
			query: func(q url.Values, _ string) map[string]interface{} {
				return map[string]interface{}{"error": "access_denied", "error_description": "the customer said no", "state": q.Get("state")}
			},
			wantStatus: 400, wantPage: "access_denied: the customer said no", wantCred: credNeedsConsent,
		},
		"another issuer": {
			query: func(q url.Values, code string) map[string]interface{} {
				return map[string]interface{}{"code": code, "state": q.Get("state"), "iss": "https://evil.example"}
			},
			wantStatus: 400, wantPage: "mix-up",
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			bank := newFakeBank(t)
			e.setupConsentRole(t, bank, nil)
			// An issuer to check iss against, without discovery.
			env, _ := getEnvironment(context.Background(), e.storage, "bank")
			env.Issuer = bank.URL
			entry, _ := logical.StorageEntryJSON(environmentStoragePrefix+"bank", env)
			_ = e.storage.Put(context.Background(), entry)

			resp := e.do(t, logical.UpdateOperation, "creds/acct/kari/authorize", nil)
			u, _ := url.Parse(resp.Data["authorization_url"].(string))
			code := bank.issueCode(u.Query().Get("code_challenge"))
			page := e.do(t, logical.ReadOperation, "callback", tc.query(u.Query(), code))
			body := string(page.Data[logical.HTTPRawBody].([]byte))
			if page.Data[logical.HTTPStatusCode] != tc.wantStatus || !strings.Contains(body, tc.wantPage) ||
				page.Data[logical.HTTPContentType] != "text/html; charset=utf-8" {
				t.Errorf("callback answered %v with %q, want %d with %q", page.Data[logical.HTTPStatusCode], body, tc.wantStatus, tc.wantPage)
			}
			cred, _ := getCredential(context.Background(), e.storage, "acct", "kari")
			switch {
			case tc.wantCred == "" && cred != nil:
				t.Errorf("a credential was stored: %+v", cred.Status)
			case tc.wantCred != "" && (cred == nil || cred.Status != tc.wantCred):
				t.Errorf("credential = %+v, want status %s", cred, tc.wantCred)
			}
			if tc.wantCred != credActive && bank.grantsOf("authorization_code") != 0 {
				t.Error("a code was exchanged for a refused redirect")
			}
		})
	}
}

// invalid_grant on a refresh: the customer must consent again. The
// credential is kept, never refreshed again by reads, and says so; status
// and list show it without any token.
func TestCreds_InvalidGrantNeedsConsent(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	bank.refuseWith = "invalid_grant"
	e.clock.Advance(time.Hour)
	for i := range 2 {
		_, err := e.readCredential(t, "kari")
		if err == nil || !strings.Contains(err.Error(), "needs consent") || !strings.Contains(err.Error(), "creds/acct/kari/authorize") {
			t.Fatalf("read %d: %v, want a needs-consent error that says how", i, err)
		}
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != http.StatusBadRequest {
			t.Errorf("read %d answered %v, want 400", i, err)
		}
	}
	if got := bank.grantsOf("refresh_token"); got != 1 {
		t.Errorf("%d refreshes, want 1: a credential that needs consent is not refreshed again", got)
	}
	status := e.do(t, logical.ReadOperation, "creds/acct/kari/status", nil).Data
	list := e.do(t, logical.ListOperation, "creds/acct/", nil).Data
	if status["status"] != credNeedsConsent || status["refresh_token_set"] != true {
		t.Errorf("status = %v", status)
	}
	info := list["key_info"].(map[string]interface{})["kari"].(map[string]interface{})
	if info["status"] != credNeedsConsent {
		t.Errorf("list -detailed = %v", info)
	}
	raw, _ := json.Marshal([]interface{}{status, list})
	cred := e.storedCredential(t, "kari")
	for _, secret := range []string{cred.RefreshToken, cred.Access.Value, testClientSecret} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("status or list shows a secret")
		}
	}
}

// invalid_client is the role's problem: the refresh token is kept.
func TestCreds_InvalidClientKeepsTheRefreshToken(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	before := e.storedCredential(t, "kari").RefreshToken
	bank.refuseWith = "invalid_client"
	e.clock.Advance(time.Hour)
	if _, err := e.readCredential(t, "kari"); err == nil || !strings.Contains(err.Error(), `role "acct"'s client was refused`) {
		t.Fatalf("read: %v, want the role's client refused", err)
	}
	if cred := e.storedCredential(t, "kari"); cred.Status != credClientError || cred.RefreshToken != before {
		t.Errorf("credential status %s, refresh token kept %v", cred.Status, cred.RefreshToken == before)
	}
	// Once the client is fixed (and the failure pause is over), the same
	// refresh token works.
	bank.refuseWith = ""
	e.clock.Advance(minGrantPause)
	if resp, err := e.readCredential(t, "kari"); err != nil || resp.IsError() {
		t.Errorf("read after the fix: %v %v", err, respError(resp))
	}
}

// The rotated refresh token is stored even when the reader gives up as the
// answer arrives: the write does not take the request's cancellation.
func TestCreds_RotatedTokenStoredWhenTheReaderCancels(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.clock.Advance(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	e.storage = &cancelAfterAnswer{Storage: e.storage, cancel: cancel}
	_, _ = e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "creds/acct/kari", Storage: e.storage})
	cred := e.storedCredential(t, "kari")
	if !bank.refresh[cred.RefreshToken] {
		t.Errorf("the stored refresh token is not the bank's live one: the rotated token was lost")
	}
}

// cancelAfterAnswer cancels the request when the first credential write
// starts, as a reader that gives up just as the bank answers.
type cancelAfterAnswer struct {
	logical.Storage
	cancel context.CancelFunc
}

func (c *cancelAfterAnswer) Put(ctx context.Context, entry *logical.StorageEntry) error {
	c.cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.Storage.Put(ctx, entry)
}

// The password grant runs at once; only its refresh token is kept, and the
// password never reaches storage, a response or the log, unless the role
// keeps it, for a bank without refresh tokens.
func TestCreds_PasswordGrant(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	resp := e.write(t, "creds/acct/kari", map[string]interface{}{"username": testUsername, "password": testPassword})
	if resp != nil && resp.IsError() {
		t.Fatal(resp.Error())
	}
	cred := e.storedCredential(t, "kari")
	if cred.Password != "" || cred.RefreshToken == "" || cred.GrantType != grantPassword {
		t.Errorf("stored: password kept %v, refresh token %v, grant %s", cred.Password != "", cred.RefreshToken != "", cred.GrantType)
	}
	if resp, err := e.readCredential(t, "kari"); err != nil || resp.IsError() {
		t.Fatalf("read: %v %v", err, respError(resp))
	}

	// A wrong password: the bank's refusal, without the password.
	_, err := e.request(logical.UpdateOperation, "creds/acct/other", map[string]interface{}{"username": testUsername, "password": "wrong-" + testPassword})
	if err == nil || !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), testPassword) {
		t.Errorf("wrong password: %v", err)
	}

	// No refresh tokens at this bank: with keep_password the grant runs again.
	bank.noRefresh = true
	e.mustWrite(t, "roles/acct", map[string]interface{}{"keep_password": true})
	e.mustWrite(t, "creds/acct/kept", map[string]interface{}{"username": testUsername, "password": testPassword})
	e.clock.Advance(time.Hour)
	if resp, err := e.readCredential(t, "kept"); err != nil || resp.IsError() {
		t.Fatalf("read after expiry with keep_password: %v %v", err, respError(resp))
	}
	if got := bank.grantsOf("password"); got != 4 {
		t.Errorf("%d password grants, want 4 (kari, the wrong one, kept, kept again)", got)
	}
	if strings.Contains(e.logs.String(), testPassword) {
		t.Error("the log holds the password")
	}
}

// A role that allows implicit is refused with the reason.
func TestCreds_ImplicitRefused(t *testing.T) {
	e := newTestEnv(t)
	resp := e.write(t, "roles/r", map[string]interface{}{"client_id": "c", "client_secret": "s", "allowed_grant_types": "client_credentials,implicit"})
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "RFC 9700 section 2.1.2") ||
		!strings.Contains(resp.Error().Error(), "URL fragment") {
		t.Errorf("allowing implicit: %v, want a 400 with the reason", respError(resp))
	}
}

// Roles keep to their grants: token/ for client_credentials, creds/ for
// the customer grants.
func TestCreds_GrantTypesKeepToTheirPaths(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	resp, err := e.request(logical.ReadOperation, "token/acct", nil)
	if err == nil && resp != nil && resp.IsError() {
		err = resp.Error()
	}
	if err == nil || !strings.Contains(err.Error(), "not client_credentials") {
		t.Errorf("token/acct on an authorization_code role: %v", err)
	}
	e.setupRole(t, bank.fakeAuthServer, "machine", nil)
	resp = e.do(t, logical.UpdateOperation, "creds/machine/kari/authorize", nil)
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "does not allow authorization_code") {
		t.Errorf("authorize on a client_credentials role: %v", respError(resp))
	}
}

// A performance standby cannot store a rotated refresh token: reads and the
// callback answer logical.ErrReadOnly before any request, and Vault
// forwards them.
func TestCreds_PerformanceStandbyAnswersReadOnly(t *testing.T) {
	active := newTestEnv(t)
	bank := newFakeBank(t)
	active.setupConsentRole(t, bank, nil)
	active.consent(t, bank, "kari")
	before := bank.count()
	e := newTestEnvOnNode(t, consts.ReplicationPerformanceStandby)
	e.storage = active.storage
	for _, path := range []string{"creds/acct/kari", "callback"} {
		if _, err := e.request(logical.ReadOperation, path, nil); !errors.Is(err, logical.ErrReadOnly) {
			t.Errorf("read %s on a performance standby: %v, want logical.ErrReadOnly", path, err)
		}
	}
	if bank.count() != before {
		t.Error("a performance standby reached the bank")
	}
}

// Delete revokes the refresh token at the bank and forgets the credential;
// a role with credentials cannot be deleted.
func TestCreds_DeleteRevokesAtTheBank(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	rt := e.storedCredential(t, "kari").RefreshToken
	if resp := e.do(t, logical.DeleteOperation, "roles/acct", nil); resp == nil || !resp.IsError() ||
		!strings.Contains(resp.Error().Error(), "delete them first") {
		t.Errorf("deleting a role with credentials: %v", respError(resp))
	}
	if resp := e.do(t, logical.DeleteOperation, "creds/acct/kari", nil); resp != nil && (resp.IsError() || len(resp.Warnings) > 0) {
		t.Errorf("delete: %v %v", respError(resp), resp.Warnings)
	}
	if len(bank.revoked) != 1 || bank.revoked[0] != rt+" refresh_token" {
		t.Errorf("the bank revoked %v, want the refresh token", bank.revoked)
	}
	if cred, _ := getCredential(context.Background(), e.storage, "acct", "kari"); cred != nil {
		t.Error("the credential survived its delete")
	}
	if resp := e.do(t, logical.DeleteOperation, "roles/acct", nil); resp != nil && resp.IsError() {
		t.Errorf("deleting the role without credentials: %v", resp.Error())
	}
}

// The authorization URL keeps the role's extra parameters, which cannot
// replace the engine's, and redirect_uri must be one of the role's.
func TestCreds_AuthorizeChecks(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, map[string]interface{}{"authorization_params": "ui_locales=nb", "pkce": false})
	resp := e.do(t, logical.UpdateOperation, "creds/acct/kari/authorize", nil)
	u, _ := url.Parse(resp.Data["authorization_url"].(string))
	if u.Query().Get("ui_locales") != "nb" || u.Query().Has("code_challenge") {
		t.Errorf("authorization URL %s: want ui_locales and no PKCE (pkce=false)", u)
	}
	resp = e.do(t, logical.UpdateOperation, "creds/acct/kari/authorize", map[string]interface{}{"redirect_uri": "https://evil.example/cb"})
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "is not one of role") {
		t.Errorf("a foreign redirect_uri: %v", respError(resp))
	}
	for field, value := range map[string]string{"authorization_params": "state=x", "redirect_uris": "http://app.example/cb"} {
		if resp := e.write(t, "roles/acct", map[string]interface{}{field: value}); resp == nil || !resp.IsError() {
			t.Errorf("%s=%s was accepted", field, value)
		}
	}
}

// The periodic function refreshes an active credential nobody read for the
// role's refresh_keep_alive, leaves fresh ones and those that need consent
// alone, does nothing on a performance standby, and purges expired
// consent requests.
func TestCreds_KeepAliveAndPurge(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, map[string]interface{}{"refresh_keep_alive": "1h"})
	e.consent(t, bank, "idle")
	e.consent(t, bank, "refused")
	refused := e.storedCredential(t, "refused")
	refused.Status = credNeedsConsent
	if err := e.b.putCredential(context.Background(), e.storage, "acct", "refused", refused); err != nil {
		t.Fatal(err)
	}
	e.do(t, logical.UpdateOperation, "creds/acct/later/authorize", nil) // a customer who never comes back
	periodic := func(env *testEnv) {
		if err := env.b.periodic(context.Background(), &logical.Request{Storage: e.storage}); err != nil {
			t.Fatal(err)
		}
	}

	periodic(e)
	if got := bank.grantsOf("refresh_token"); got != 0 {
		t.Fatalf("%d keep-alive refreshes of fresh credentials", got)
	}
	e.clock.Advance(61 * time.Minute)
	standby := newTestEnvOnNode(t, consts.ReplicationPerformanceStandby)
	periodic(standby)
	if got := bank.grantsOf("refresh_token"); got != 0 {
		t.Fatalf("a performance standby refreshed %d credentials", got)
	}
	periodic(e)
	if got := bank.grantsOf("refresh_token"); got != 1 {
		t.Errorf("%d keep-alive refreshes, want 1 (idle; refused needs consent)", got)
	}
	if keys, _ := e.storage.List(context.Background(), pendingConsentPrefix); len(keys) != 0 {
		t.Errorf("%d expired consent requests left", len(keys))
	}
	if cred := e.storedCredential(t, "idle"); !e.clock.Now().Equal(cred.RefreshedAt) {
		t.Errorf("idle was refreshed at %s, want now", cred.RefreshedAt)
	}
}

// A refresh whose access token the engine refuses (not a Bearer token)
// still keeps the rotated refresh token: the old one is spent, and the
// new one is the only way back.
func TestCreds_RefreshTokenKeptWhenTheAccessTokenIsRefused(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.clock.Advance(time.Hour)
	bank.tokenType = "MAC"
	if _, err := e.readCredential(t, "kari"); err == nil || !strings.Contains(err.Error(), "the new refresh token is kept") {
		t.Fatalf("read: %v, want the refusal of the MAC token, saying the refresh token is kept", err)
	}
	cred := e.storedCredential(t, "kari")
	if !bank.refresh[cred.RefreshToken] {
		t.Fatal("the rotated refresh token was not kept")
	}
	bank.tokenType = ""
	e.clock.Advance(minGrantPause) // past the failure pause
	if resp, err := e.readCredential(t, "kari"); err != nil || resp.IsError() {
		t.Errorf("the next read, with the kept token: %v %v", err, respError(resp))
	}
	if bank.reuses != 0 {
		t.Errorf("%d refresh tokens reused", bank.reuses)
	}
}

// Writing a role's default grant types, or its customer-grant settings,
// keeps its cached client_credentials token: the declarative provider sends
// every field on each apply.
func TestCreds_CustomerSettingsKeepTheCachedToken(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	first := e.readToken(t, "r").Data["access_token"]
	e.mustWrite(t, "roles/r", map[string]interface{}{
		"allowed_grant_types": "client_credentials", "consent_scopes": "bankservice", "authorization_params": "ui_locales=nb",
		"pkce": false, "refresh_keep_alive": "1h",
	})
	if got := e.readToken(t, "r").Data["access_token"]; got != first || srv.count() != 1 {
		t.Errorf("after writing the customer-grant settings the token is %v (%d grants), want the cached %v", got, srv.count(), first)
	}
	if got := e.do(t, logical.ReadOperation, "roles/r", nil).Data["allowed_grant_types"]; fmt.Sprint(got) != "[client_credentials]" {
		t.Errorf("allowed_grant_types reads %v", got)
	}
}

// A reader asking for more life than the bank's tokens have gets 400, and
// so do the readers after it, for one refresh in all: the refused reads do
// not spend the customer's rotating refresh tokens one by one.
func TestCreds_ImpossibleMinRemainingCostsOneRefresh(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	for i := range 10 {
		_, err := e.request(logical.ReadOperation, "creds/acct/kari", map[string]interface{}{"min_remaining": "1h"})
		if err == nil || !strings.Contains(err.Error(), "less than the min_remaining asked for") {
			t.Fatalf("read %d with min_remaining=1h: %v, want the 400 saying the tokens live less", i, err)
		}
	}
	if got := bank.grantsOf("refresh_token"); got != 1 {
		t.Errorf("10 impossible reads made %d refreshes, want 1", got)
	}
	if resp, err := e.readCredential(t, "kari"); err != nil || resp.IsError() {
		t.Errorf("a read without min_remaining: %v %v", err, respError(resp))
	}
}

// Fifty readers at an expired token meet a slow, failing bank: they share
// one renewal (with its retries) and its failure, and the reads during the
// pause that follows reach the bank not at all.
func TestCreds_ManyReadersAtAFailingBank(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.clock.Advance(time.Hour)
	bank.failWith = http.StatusServiceUnavailable
	bank.onRefresh = func() { time.Sleep(50 * time.Millisecond) }
	before := bank.count()
	var wg sync.WaitGroup
	failed := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.readCredential(t, "kari"); err != nil {
				failed <- err
			}
		}()
	}
	wg.Wait()
	close(failed)
	if len(failed) != 50 {
		t.Errorf("%d of 50 reads failed, want all: the bank failed and the stored token had expired", len(failed))
	}
	if got := bank.count() - before; got > 1+maxGrantRetries {
		t.Errorf("50 readers sent %d refreshes, want at most %d (one renewal and its retries)", got, 1+maxGrantRetries)
	}
	during := bank.count()
	for range 10 {
		_, _ = e.readCredential(t, "kari")
	}
	if bank.count() != during {
		t.Errorf("reads during the failure pause sent %d refreshes", bank.count()-during)
	}
	if bank.reuses != 0 {
		t.Errorf("%d refresh tokens reused", bank.reuses)
	}
}

// The clock moves while the bank answers a refresh: the lease is what the
// new token has left when the answer is made, not when it was asked for.
func TestCreds_ClockMovesDuringTheRefresh(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	e.clock.Advance(time.Hour)
	bank.onRefresh = func() { e.clock.Advance(30 * time.Second) }
	resp, err := e.readCredential(t, "kari")
	if err != nil || resp.IsError() {
		t.Fatalf("read: %v %v", err, respError(resp))
	}
	expires, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if left := expires.Sub(e.clock.Now()); resp.Secret.TTL > left || resp.Secret.TTL < left-time.Second {
		t.Errorf("lease %s, but the token has %s left when the answer is made", resp.Secret.TTL, left)
	}
}

// A credential's consent and renewals share the environment's connections:
// each renewal does not build a client (and a connection) of its own.
func TestCreds_RenewalsShareTheEnvironmentsConnections(t *testing.T) {
	e := newTestEnv(t)
	bank := newFakeBank(t)
	e.setupConsentRole(t, bank, nil)
	e.consent(t, bank, "kari")
	for range 2 {
		e.clock.Advance(time.Hour)
		if resp, err := e.readCredential(t, "kari"); err != nil || resp.IsError() {
			t.Fatalf("read: %v %v", err, respError(resp))
		}
	}
	for i := 1; i < bank.count(); i++ {
		if got, first := bank.request(i).RemoteAddr, bank.request(0).RemoteAddr; got != first {
			t.Errorf("request %d came from %s, the exchange from %s: a new connection", i, got, first)
		}
	}
}
