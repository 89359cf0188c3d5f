package aritma

// Bank customers' credentials (path_creds.go): what is stored for each, the
// consent that creates one, and the refresh that keeps it. A credential's
// access token is leased exactly as token/'s is; its refresh token never
// leaves Vault.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

const (
	credentialStoragePrefix = "creds/"
	pendingConsentPrefix    = "consent/pending/"
	// consentTimeout is how long a customer has to consent after the
	// authorization URL is made; the state is single-use within it.
	consentTimeout = 10 * time.Minute

	minRefreshKeepAlive = time.Minute
	maxRefreshKeepAlive = 90 * 24 * time.Hour
)

// A credential's status, as reads, lists and status show it.
const (
	credActive       = "active"        // tokens flow
	credNeedsConsent = "needs_consent" // the bank refused the refresh token: the customer must consent again
	credClientError  = "client_error"  // the bank refused the role's client; the refresh token is kept
	credFailing      = "failing"       // the bank failed (5xx, 429, network); reads retry
)

// storedToken is an access token as storage keeps it.
type storedToken struct {
	Value     string    `json:"value"`
	Type      string    `json:"type"`
	Scope     string    `json:"scope"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func storeToken(t *accessToken) *storedToken {
	return &storedToken{Value: t.value, Type: t.tokenType, Scope: t.scope, IssuedAt: t.issuedAt, ExpiresAt: t.expiresAt}
}

func (s *storedToken) accessToken() *accessToken {
	return &accessToken{
		value: s.Value, tokenType: s.Type, scope: s.Scope, issuedAt: s.IssuedAt, expiresAt: s.ExpiresAt,
		data: map[string]interface{}{
			"access_token": s.Value,
			"token_type":   s.Type,
			"expires_at":   s.ExpiresAt.UTC().Format(time.RFC3339),
			"scope":        s.Scope,
		},
	}
}

// credentialError is the last failure of a credential, as the bank gave
// it: never a token or a secret.
type credentialError struct {
	At          time.Time `json:"at"`
	Code        string    `json:"error,omitempty"`
	Description string    `json:"error_description,omitempty"`
	Message     string    `json:"message"`
}

// credentialEntry is one bank customer's consent under a role.
type credentialEntry struct {
	GrantType    string       `json:"grant_type"` // authorization_code or password
	ClientID     string       `json:"client_id"`  // the client the refresh token was issued to
	RefreshToken string       `json:"refresh_token,omitempty"`
	Access       *storedToken `json:"access,omitempty"`
	Scope        string       `json:"scope,omitempty"` // what the customer consented to
	Status       string       `json:"status"`
	Username     string       `json:"username,omitempty"`
	// Password is kept only with the role's keep_password.
	Password    string           `json:"password,omitempty"`
	EntityID    string           `json:"entity_id,omitempty"`
	ConsentedAt time.Time        `json:"consented_at"`
	RefreshedAt time.Time        `json:"refreshed_at"`
	LastError   *credentialError `json:"last_error,omitempty"`
}

// pendingConsent is an authorization request waiting for the customer,
// stored under the hash of its state.
type pendingConsent struct {
	Role        string    `json:"role"`
	Credential  string    `json:"credential"`
	Verifier    string    `json:"verifier,omitempty"`
	RedirectURI string    `json:"redirect_uri"`
	Scopes      []string  `json:"scopes,omitempty"`
	EntityID    string    `json:"entity_id,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func credentialKey(role, name string) string { return credentialStoragePrefix + role + "/" + name }

func pendingKey(state string) string {
	sum := sha256.Sum256([]byte(state))
	return pendingConsentPrefix + hex.EncodeToString(sum[:])
}

func getCredential(ctx context.Context, s logical.Storage, role, name string) (*credentialEntry, error) {
	entry, err := s.Get(ctx, credentialKey(role, name))
	if err != nil {
		return nil, fmt.Errorf("reading credential %q of role %q: %w", name, role, err)
	}
	if entry == nil {
		return nil, nil
	}
	cred := &credentialEntry{}
	if err := entry.DecodeJSON(cred); err != nil {
		return nil, fmt.Errorf("decoding credential %q of role %q: %w", name, role, err)
	}
	return cred, nil
}

// putCredential stores cred, and notes in the role's counters whether it
// needs its customer's consent. The write is not cancelled with the
// request: a rotated refresh token that is not stored is lost for good.
func (b *backend) putCredential(ctx context.Context, s logical.Storage, role, name string, cred *credentialEntry) error {
	entry, err := logical.StorageEntryJSON(credentialKey(role, name), cred)
	if err != nil {
		return err
	}
	if err := s.Put(context.WithoutCancel(ctx), entry); err != nil {
		return fmt.Errorf("storing credential %q of role %q: %w", name, role, err)
	}
	b.statsFor(role).noteCredential(name, cred.Status == credNeedsConsent)
	return nil
}

// randomToken is 32 random bytes, base64url: a state or a PKCE verifier.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// credentialSource is a credential's access token in memory, and the lock
// that makes one refresh serve every concurrent reader.
type credentialSource struct {
	mu    sync.Mutex // held while the credential is loaded or refreshed
	token atomic.Pointer[accessToken]
	// minRemaining is the role's, from when the token was stored.
	minRemaining atomic.Int64
	// leaseData is every lease's internal data, made once.
	leaseData map[string]interface{}
	// flight shares one renewal among the readers that need it, pause
	// holds renewals back after failures, and deliverable is what the last
	// new token had left when it arrived (a time.Duration).
	flight      singleflight.Group
	pause       grantPause
	deliverable atomic.Int64
}

type credentialID struct{ role, name string }

func (b *backend) credentialSource(role, name string) *credentialSource {
	id := credentialID{role, name}
	b.credentialsMu.RLock()
	src := b.credentials[id]
	b.credentialsMu.RUnlock()
	if src != nil {
		return src
	}
	b.credentialsMu.Lock()
	defer b.credentialsMu.Unlock()
	if src = b.credentials[id]; src == nil {
		src = &credentialSource{leaseData: map[string]interface{}{
			"secret_type": secretAccessTokenType, "role": role, "credential": name,
		}}
		b.credentials[id] = src
	}
	return src
}

// dropCredentials forgets the cached tokens of role's credentials (all of
// them when name is ""), so that the next read loads them from storage, and
// ends their failure pauses.
func (b *backend) dropCredentials(role, name string) {
	b.credentialsMu.RLock()
	defer b.credentialsMu.RUnlock()
	for id, src := range b.credentials {
		if id.role == role && (name == "" || id.name == name) {
			src.token.Store(nil)
			src.pause.record(time.Time{}, nil) // a change may be what the failures needed
		}
	}
}

// credentialRequest is what reading a credential needs from storage.
type credentialRequest struct {
	role, name string
	roleEntry  *roleEntry
	env        *environmentEntry
	grant      *grantClient
	mount      string
}

// loadCredentialRequest reads the role and its environment, and checks
// that the role takes customer credentials. A missing role or environment
// is the caller's error response.
func (b *backend) loadCredentialRequest(ctx context.Context, s logical.Storage, mount, role, name string, grants ...string) (*credentialRequest, *logical.Response, error) {
	generation := b.currentGeneration()
	r, err := getRole(ctx, s, role)
	if err != nil {
		return nil, nil, err
	}
	if r == nil {
		return nil, logical.ErrorResponse("role %q does not exist", role), nil
	}
	if !slices.ContainsFunc(grants, r.allows) {
		return nil, logical.ErrorResponse("role %q does not allow %s (allowed_grant_types: %s)",
			role, strings.Join(grants, " or "), strings.Join(r.allowedGrantTypes(), ", ")), nil
	}
	env, err := getEnvironment(ctx, s, r.Environment)
	if err != nil {
		return nil, nil, err
	}
	if env == nil {
		return nil, logical.ErrorResponse("role %q uses environment %q, which does not exist; %s", role, r.Environment, environmentHint), nil
	}
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	grant, shared, err := b.newGrantClient(role, r, env, cfg)
	if err != nil {
		return nil, logical.ErrorResponse("role %q: %v", role, err), nil
	}
	b.statsFor(role).usedWith(r.Environment)
	if shared {
		// Renewals reuse the environment's connections, as token reads do.
		b.shareHTTPClient(r.Environment, grant.httpClient, generation)
	}
	return &credentialRequest{role: role, name: name, roleEntry: r, env: env, grant: grant, mount: mount}, nil, nil
}

// consentHint says how to get a customer's consent again.
func (c *credentialRequest) consentHint() string {
	if c.roleEntry.allows(grantAuthorizationCode) {
		return fmt.Sprintf("the customer must consent again: vault write -f %screds/%s/%s/authorize, and send the customer to its authorization_url",
			c.mount, c.role, c.name)
	}
	return fmt.Sprintf("write username and password to %screds/%s/%s again", c.mount, c.role, c.name)
}

// scrub removes from text the secrets a bank might echo back.
func (c *credentialRequest) scrub(cred *credentialEntry, text string) string {
	text = c.grant.auth.scrub(text)
	for _, secret := range []string{cred.RefreshToken, cred.Password} {
		if len(secret) >= 8 {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return text
}

// failure records err, a failed token request of cred, and answers it: a
// refused refresh token needs the customer's consent, a refused client is
// the role's problem (the refresh token is kept for when it is fixed), and
// a failing bank is retried by later reads.
func (c *credentialRequest) failure(cred *credentialEntry, err error, now time.Time) error {
	described := describeGrantError(err, c.grant.tokenURL, c.grant.timeout, func(s string) string { return c.scrub(cred, s) })
	record := &credentialError{At: now.UTC(), Message: described.Error()}
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		record.Code, record.Description = c.scrub(cred, rerr.ErrorCode), c.scrub(cred, rerr.ErrorDescription)
	}
	cred.LastError = record
	switch record.Code {
	case "invalid_grant":
		cred.Status = credNeedsConsent
		return refusalError(fmt.Sprintf("credential %q of role %q needs consent: %s; %s", c.name, c.role, described, c.consentHint()))
	case "invalid_client", "unauthorized_client":
		cred.Status = credClientError
		return refusalError(fmt.Sprintf("role %q's client was refused (%s); fix the role's client credentials: "+
			"the customer's refresh token is kept", c.role, described))
	}
	cred.Status = credFailing
	return described
}

// renew gets cred a new access token: the refresh grant, or the password
// grant again when the role keeps the password. It stores the outcome,
// success or failure, in one write that the request's cancellation cannot
// interrupt. The caller holds the credential's source lock.
func (b *backend) renew(ctx context.Context, s logical.Storage, c *credentialRequest, cred *credentialEntry) (*accessToken, error) {
	scopes := strings.Fields(cred.Scope)
	var answer *consentAnswer
	var err error
	switch {
	case cred.RefreshToken != "":
		answer, err = c.refreshWithRetries(ctx, cred.RefreshToken, scopes, b.now)
	case cred.Password != "":
		answer, err = c.grant.passwordGrant(ctx, cred.Username, cred.Password, scopes, b.now)
	default:
		cred.Status = credNeedsConsent
		cred.LastError = &credentialError{At: b.now().UTC(), Message: "the bank issued no refresh token and the access token expired"}
		if perr := b.putCredential(ctx, s, c.role, c.name, cred); perr != nil {
			return nil, perr
		}
		return nil, refusalError(fmt.Sprintf("credential %q of role %q needs consent: its access token expired and the bank "+
			"issued no refresh token; %s", c.name, c.role, c.consentHint()))
	}
	now := b.now()
	stats := b.statsFor(c.role)
	if err != nil {
		answerErr := c.failure(cred, err, now)
		stats.recordRenewal(renewalOutcome(cred, answerErr))
		if perr := b.putCredential(ctx, s, c.role, c.name, cred); perr != nil {
			return nil, perr
		}
		b.Logger().Warn("customer credential not renewed", "role", c.role, "credential", c.name, "status", cred.Status,
			"error", cred.LastError.Code)
		return nil, answerErr
	}
	if answer.refreshToken != "" {
		cred.RefreshToken = answer.refreshToken // rotated
	}
	if answer.tokenErr != nil {
		cred.Status = credFailing
		cred.LastError = &credentialError{At: now.UTC(), Message: answer.tokenErr.Error()}
		stats.recordRenewal(renewalOutcome(cred, answer.tokenErr))
		if perr := b.putCredential(ctx, s, c.role, c.name, cred); perr != nil {
			return nil, perr
		}
		return nil, withNote(answer.tokenErr, "; the new refresh token is kept")
	}
	stats.recordRenewal(renewalOutcome(cred, nil))
	cred.Access, cred.Status, cred.RefreshedAt, cred.LastError = storeToken(answer.token), credActive, now.UTC(), nil
	if err := b.putCredential(ctx, s, c.role, c.name, cred); err != nil {
		return nil, err
	}
	b.Logger().Debug("customer credential renewed", "role", c.role, "credential", c.name)
	return answer.token, nil
}

// renewalOutcome is how the role's counters count a renewal that ended
// with err (nil: granted).
func renewalOutcome(cred *credentialEntry, err error) string {
	switch {
	case err == nil:
		return "granted"
	case cred.Status == credNeedsConsent:
		return credNeedsConsent
	}
	return classOf(err)
}

// refreshWithRetries refreshes, repeating only what cannot have spent the
// refresh token (refreshRetryable), within one time limit.
func (c *credentialRequest) refreshWithRetries(ctx context.Context, refreshToken string, scopes []string, now func() time.Time) (*consentAnswer, error) {
	deadline := now().Add(c.grant.timeout)
	for attempt := 0; ; attempt++ {
		answer, err := c.grant.refresh(ctx, refreshToken, scopes, now)
		if err == nil {
			return answer, nil
		}
		again, retryAfter := refreshRetryable(err)
		wait := c.grant.backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
		}
		if !again || attempt == maxGrantRetries || now().Add(wait).After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// credentialToken answers a read of a credential: its access token if it
// has min_remaining (or want) left, else a renewed one. Readers that find
// it too old share one renewal, and its failure; after a failure the
// credential pauses as a role's grants do (grantPause); and a want that the
// bank's tokens have shown they cannot meet is refused before any refresh.
func (b *backend) credentialToken(ctx context.Context, s logical.Storage, src *credentialSource, mount, role, name string, want time.Duration) (*accessToken, time.Duration, []string, error) {
	if tok := src.token.Load(); tok != nil {
		now := b.now()
		if ttl, ok := leaseFor(tok, now, want); ok && tok.reusable(now, time.Duration(src.minRemaining.Load())) {
			return tok, ttl, nil, nil
		}
	}
	if d := time.Duration(src.deliverable.Load()); want > 0 && d > 0 && want > d {
		return nil, 0, nil, tooShortLived(role, name, want, d)
	}
	// The renewal runs without the reader's cancellation: other readers
	// share it, and a rotated refresh token must be stored either way.
	ch := src.flight.DoChan(want.String(), func() (any, error) {
		return b.loadOrRenew(context.WithoutCancel(ctx), s, src, mount, role, name, want)
	})
	var res singleflight.Result
	select {
	case <-ctx.Done():
		return nil, 0, nil, ctx.Err()
	case res = <-ch:
	}
	if res.Err != nil {
		return nil, 0, nil, res.Err
	}
	got := res.Val.(credentialHandout)
	// Each reader's lease from its own reading of the clock.
	ttl, ok := leaseFor(got.token, b.now(), want)
	if !ok {
		return nil, 0, nil, tooShortLived(role, name, want, got.token.expiresAt.Sub(b.now()))
	}
	return got.token, ttl, got.warnings, nil
}

// credentialHandout is what a shared renewal gives its readers.
type credentialHandout struct {
	token    *accessToken
	warnings []string
}

// tooShortLived answers a reader whose min_remaining the customer's tokens
// cannot meet: 400, which no retry would change.
func tooShortLived(role, name string, want, deliverable time.Duration) error {
	if want < time.Second {
		return upstreamError(fmt.Sprintf("credential %q of role %q: the bank's token arrived with less than a second left", name, role))
	}
	return refusalError(fmt.Sprintf("the bank's tokens for credential %q of role %q live %s, less than the min_remaining asked for (%s)",
		name, role, deliverable.Round(time.Second), want))
}

// loadOrRenew runs inside the shared renewal: it loads the credential and
// hands out its stored token if that has enough life left, or renews it.
func (b *backend) loadOrRenew(ctx context.Context, s logical.Storage, src *credentialSource, mount, role, name string, want time.Duration) (credentialHandout, error) {
	src.mu.Lock()
	defer src.mu.Unlock()
	c, errResp, err := b.loadCredentialRequest(ctx, s, mount, role, name, grantAuthorizationCode, grantPassword)
	if err != nil {
		return credentialHandout{}, err
	}
	if errResp != nil {
		return credentialHandout{}, refusalError(errResp.Error().Error())
	}
	src.minRemaining.Store(int64(c.roleEntry.MinRemaining))
	cred, err := getCredential(ctx, s, role, name)
	if err != nil {
		return credentialHandout{}, err
	}
	if cred == nil {
		return credentialHandout{}, refusalError(fmt.Sprintf("credential %q of role %q does not exist; %s", name, role, c.consentHint()))
	}
	if cred.Status == credNeedsConsent {
		b.statsFor(role).noteCredential(name, true)
		reason := "the bank refused its refresh token"
		if cred.LastError != nil {
			reason = cred.LastError.Message
		}
		return credentialHandout{}, refusalError(fmt.Sprintf("credential %q of role %q needs consent (%s); %s", name, role, reason, c.consentHint()))
	}
	now := b.now()
	if cred.Access != nil {
		tok := cred.Access.accessToken()
		if _, ok := leaseFor(tok, now, want); ok && tok.reusable(now, max(c.roleEntry.MinRemaining, want)) {
			src.token.Store(tok)
			return credentialHandout{token: tok}, nil
		}
	}
	if err := src.pause.check(now); err != nil {
		return storedFallback(cred, now, want, err)
	}
	tok, err := b.renew(ctx, s, c, cred)
	receivedAt := b.now()
	src.pause.record(receivedAt, err)
	if err != nil {
		return storedFallback(cred, receivedAt, want, err)
	}
	src.deliverable.Store(int64(tok.expiresAt.Sub(receivedAt)))
	src.token.Store(tok)
	return credentialHandout{token: tok}, nil
}

// storedFallback answers a renewal that failed at a failing bank with the
// stored token while it lives, with a warning; otherwise with the error.
func storedFallback(cred *credentialEntry, now time.Time, want time.Duration, err error) (credentialHandout, error) {
	if cred.Status == credFailing && cred.Access != nil {
		old := cred.Access.accessToken()
		if _, ok := leaseFor(old, now, want); ok {
			return credentialHandout{token: old, warnings: []string{"the bank failed to renew the customer's token; this one expires at " +
				old.expiresAt.UTC().Format(time.RFC3339) + ": " + err.Error()}}, nil
		}
	}
	return credentialHandout{}, err
}

// consentOutcome is what the bank's redirect brought back.
type consentOutcome struct {
	state, code, iss       string
	errorCode, errorDetail string
	role, name             string // empty for the mount's callback, which learns them from the state
	appPosted              bool
}

// finishConsent completes a customer's consent: the state is spent first,
// so that a retry can never replay the code; iss is checked against the
// environment (RFC 9207); the code is exchanged with the PKCE verifier.
// It returns the role and the credential's name.
func (b *backend) finishConsent(ctx context.Context, s logical.Storage, mount string, o consentOutcome) (string, string, *logical.Response, error) {
	if o.state == "" {
		return "", "", logical.ErrorResponse("state is missing: write the code and state the bank's redirect carried, or callback_url"), nil
	}
	key := pendingKey(o.state)
	entry, err := s.Get(ctx, key)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading the consent request: %w", err)
	}
	var pending pendingConsent
	if entry != nil {
		if err := entry.DecodeJSON(&pending); err != nil {
			return "", "", nil, fmt.Errorf("decoding the consent request: %w", err)
		}
	}
	now := b.now()
	if entry == nil || !pending.ExpiresAt.After(now) {
		return "", "", logical.ErrorResponse("the consent request is unknown, already used or expired (they last %s); "+
			"start again: vault write -f %screds/<role>/<name>/authorize", consentTimeout, mount), nil
	}
	if o.appPosted && (pending.Role != o.role || pending.Credential != o.name) {
		return "", "", logical.ErrorResponse("this state belongs to another credential's consent request"), nil
	}
	// Spent before anything else: whatever happens next, it never serves again.
	if err := s.Delete(context.WithoutCancel(ctx), key); err != nil {
		return "", "", nil, fmt.Errorf("spending the consent request: %w", err)
	}
	role, name := pending.Role, pending.Credential

	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	src := b.credentialSource(role, name)
	src.mu.Lock()
	defer src.mu.Unlock()
	c, errResp, err := b.loadCredentialRequest(ctx, s, mount, role, name, grantAuthorizationCode)
	if err != nil || errResp != nil {
		return role, name, errResp, err
	}
	cred, err := getCredential(ctx, s, role, name)
	if err != nil {
		return role, name, nil, err
	}
	if o.errorCode != "" {
		// Recorded on the credential; a working one stays as it was.
		if cred == nil {
			cred = &credentialEntry{GrantType: grantAuthorizationCode, ClientID: c.roleEntry.ClientID, Status: credNeedsConsent}
		}
		cred.LastError = &credentialError{At: now.UTC(), Code: o.errorCode, Description: o.errorDetail,
			Message: "the customer did not consent: " + o.errorCode}
		if err := b.putCredential(ctx, s, role, name, cred); err != nil {
			return role, name, nil, err
		}
		msg := "the bank answered " + o.errorCode
		if o.errorDetail != "" {
			msg += ": " + o.errorDetail
		}
		return role, name, logical.ErrorResponse("consent for credential %q of role %q was not given: %s", name, role, msg), nil
	}
	if issuer := c.env.Issuer; issuer != "" {
		switch {
		case o.iss != "" && o.iss != issuer:
			return role, name, logical.ErrorResponse("the authorization response names issuer %q, not environment %q's %q: "+
				"refused as a mix-up (RFC 9207)", o.iss, c.roleEntry.Environment, issuer), nil
		case o.iss == "" && c.env.Metadata != nil && c.env.Metadata.IssInAuthResponse:
			return role, name, logical.ErrorResponse("the authorization response has no iss, which issuer %q always sends (RFC 9207)", issuer), nil
		}
	}
	if o.code == "" {
		return role, name, logical.ErrorResponse("code is missing from the authorization response"), nil
	}

	answer, err := c.grant.exchangeCode(ctx, o.code, pending.RedirectURI, pending.Verifier, pending.Scopes, b.now)
	if err != nil {
		return role, name, nil, describeGrantError(err, c.grant.tokenURL, c.grant.timeout, c.grant.auth.scrub)
	}
	cred = &credentialEntry{
		GrantType: grantAuthorizationCode, ClientID: c.roleEntry.ClientID, RefreshToken: answer.refreshToken,
		Status: credActive, EntityID: pending.EntityID, ConsentedAt: now.UTC(), RefreshedAt: now.UTC(),
		Scope: strings.Join(pending.Scopes, " "),
	}
	if answer.tokenErr != nil {
		cred.LastError = &credentialError{At: now.UTC(), Message: answer.tokenErr.Error()}
	} else {
		cred.Access, cred.Scope = storeToken(answer.token), answer.token.scope
	}
	if err := b.putCredential(ctx, s, role, name, cred); err != nil {
		return role, name, nil, err
	}
	src.token.Store(nil)
	if answer.tokenErr != nil {
		return role, name, nil, withNote(answer.tokenErr, "; the refresh token is kept, and the next read renews it")
	}
	b.Logger().Info("customer consent recorded", "role", role, "credential", name)
	return role, name, nil, nil
}

// authorizationURL is where the customer consents: the environment's
// authorization endpoint with the request's parameters (RFC 6749 section
// 4.1.1, RFC 7636 section 4.3).
func authorizationURL(endpoint string, role *roleEntry, redirectURI, state, challenge string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", err
	}
	q := u.Query()
	for k, v := range role.AuthorizationParams {
		q.Set(k, v)
	}
	q.Set("response_type", "code")
	q.Set("client_id", role.ClientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	if len(role.ConsentScopes) > 0 {
		q.Set("scope", strings.Join(role.ConsentScopes, " "))
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	// OpenID Connect Core section 11: offline access needs the consent prompt.
	if slices.Contains(role.ConsentScopes, "offline_access") && q.Get("prompt") == "" {
		q.Set("prompt", "consent")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// periodic purges expired consent requests and refreshes credentials that
// nobody read for their role's refresh_keep_alive, so that a refresh token
// with a sliding lifetime does not lapse. It runs where storage can be
// written: not on performance standbys, nor on secondaries, whose storage
// is the primary's.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	state := b.System().ReplicationState()
	if state.HasState(consts.ReplicationPerformanceStandby) || state.HasState(consts.ReplicationDRSecondary) ||
		(state.HasState(consts.ReplicationPerformanceSecondary) && !b.System().LocalMount()) {
		return nil
	}
	if err := b.purgeConsentRequests(ctx, req.Storage); err != nil {
		return err
	}
	roles, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return fmt.Errorf("listing roles: %w", err)
	}
	for _, role := range roles {
		r, err := getRole(ctx, req.Storage, role)
		if err != nil || r == nil || r.RefreshKeepAlive == 0 {
			continue
		}
		names, err := req.Storage.List(ctx, credentialStoragePrefix+role+"/")
		if err != nil {
			return fmt.Errorf("listing the credentials of role %q: %w", role, err)
		}
		b.statsFor(role).usedWith(r.Environment) // its credentials are counted from here on
		for _, name := range names {
			// Jittered, so that credentials consented together do not all
			// refresh in the same minute.
			due := time.Duration(float64(r.RefreshKeepAlive) * (0.9 + 0.1*mathrand.Float64()))
			if err := b.keepAlive(ctx, req.Storage, req.MountPoint, role, name, due); err != nil {
				b.Logger().Warn("keep-alive refresh failed", "role", role, "credential", name, "error", err)
			}
		}
	}
	return nil
}

// keepAlive refreshes the credential if it is active and was last renewed
// more than due ago.
func (b *backend) keepAlive(ctx context.Context, s logical.Storage, mount, role, name string, due time.Duration) error {
	src := b.credentialSource(role, name)
	src.mu.Lock()
	defer src.mu.Unlock()
	cred, err := getCredential(ctx, s, role, name)
	if err != nil || cred == nil {
		return err
	}
	// Read anyway: the metrics learn which credentials need consent, after
	// a restart too.
	b.statsFor(role).noteCredential(name, cred.Status == credNeedsConsent)
	if cred.Status != credActive || cred.RefreshToken == "" || b.now().Sub(cred.RefreshedAt) < due {
		return nil
	}
	c, errResp, err := b.loadCredentialRequest(ctx, s, mount, role, name, grantAuthorizationCode, grantPassword)
	if err != nil {
		return err
	}
	if errResp != nil {
		return errResp.Error()
	}
	tok, err := b.renew(ctx, s, c, cred)
	if err == nil {
		src.token.Store(tok)
		b.Logger().Debug("keep-alive refresh", "role", role, "credential", name)
	}
	return err
}

// purgeConsentRequests deletes the consent requests whose customer never
// came back.
func (b *backend) purgeConsentRequests(ctx context.Context, s logical.Storage) error {
	keys, err := s.List(ctx, pendingConsentPrefix)
	if err != nil {
		return fmt.Errorf("listing consent requests: %w", err)
	}
	now := b.now()
	for _, key := range keys {
		entry, err := s.Get(ctx, pendingConsentPrefix+key)
		if err != nil || entry == nil {
			continue
		}
		var pending pendingConsent
		if entry.DecodeJSON(&pending) == nil && pending.ExpiresAt.After(now) {
			continue
		}
		if err := s.Delete(ctx, pendingConsentPrefix+key); err != nil {
			return fmt.Errorf("deleting an expired consent request: %w", err)
		}
	}
	return nil
}
