package aritma

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// accessToken is one token as the cache keeps it.
type accessToken struct {
	value     string
	tokenType string
	scope     string
	// issuedAt is when the token request was sent, less issueRounding: the
	// token is no older,
	// so expiresAt computed from it is never later than the real expiry.
	issuedAt  time.Time
	expiresAt time.Time
	// data is the read response's data, built once for every reader of the
	// token. It is never modified after parseToken: responses share it, and
	// the plugin's RPC layer only reads it to send it to Vault.
	data map[string]interface{}
}

func (t *accessToken) lifetime() time.Duration { return t.expiresAt.Sub(t.issuedAt) }

// grantClient runs the client_credentials grant for one role, and revokes
// the role's per-lease tokens.
type grantClient struct {
	tokenURL      string
	revocationURL string
	auth          *clientAuth
	scopes        []string
	params        url.Values // audience, resource and the role's extra parameters
	httpClient    *http.Client
	timeout       time.Duration
	// assumedLifetime is used when the response has no expires_in and the
	// token is not a JWT with an exp claim.
	assumedLifetime time.Duration
	// retryBase scales the backoff between retries.
	retryBase time.Duration
}

// newHTTPClient builds the client for an authorization server: its CA roots,
// a client certificate for mutual TLS, a proxy, a timeout, and no redirects.
// A redirect from a token endpoint would carry the client's credentials to
// another address.
func newHTTPClient(env *environmentEntry, cert *tls.Certificate, timeout time.Duration) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	pool, err := parseCACert(env.CACert)
	if err != nil {
		return nil, fmt.Errorf("ca_cert %v", err)
	}
	transport.TLSClientConfig.RootCAs = pool // nil: the system's roots
	if cert != nil {
		// Always present the certificate: Go's default would withhold one not
		// issued by a CA the server names, and self-signed certificates
		// (self_signed_tls_client_auth) never are.
		transport.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	// Without a proxy_url, the standard HTTPS_PROXY, HTTP_PROXY and NO_PROXY
	// variables apply (http.DefaultTransport's behaviour).
	if env.ProxyURL != "" {
		proxy, err := url.Parse(env.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("proxy_url %v", stripURL(err))
		}
		// Environment writes refuse a proxy for http endpoints; this keeps
		// one stored before that rule from sending credentials in clear.
		transport.Proxy = func(req *http.Request) (*url.URL, error) {
			if req.URL.Scheme != "https" {
				return nil, fmt.Errorf("refusing to send a %s request through proxy_url: only https goes through a proxy", req.URL.Scheme)
			}
			return proxy, nil
		}
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// Retry policy. The client_credentials grant is idempotent: repeating it
// only issues another token. So a grant whose failure may pass (a connection
// error, a 5xx, a 429) is tried again, at most maxGrantRetries times, after
// an exponential backoff with full jitter, or after the server's Retry-After
// when that fits in what is left of the request's time limit. Refusals (4xx)
// and answers that are not token responses fail at once: repeating them
// would only fail again.
const maxGrantRetries = 2

// fetch runs the grant, with the retries above, within the time limit.
func (g *grantClient) fetch(ctx context.Context, now func() time.Time) (*accessToken, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.httpClient)

	for attempt := 0; ; attempt++ {
		tok, err := g.attempt(ctx, now)
		if err == nil {
			return tok, nil
		}
		again, retryAfter := retryable(err)
		if !again || attempt == maxGrantRetries {
			return nil, describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub)
		}
		wait := g.backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
		}
		if deadline, _ := ctx.Deadline(); time.Until(deadline) < wait {
			return nil, withNote(describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub),
				fmt.Sprintf("; not retried: the next try (in %s) would pass the %s time limit", wait.Round(time.Millisecond), g.timeout))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub)
		case <-timer.C:
		}
	}
}

// attempt sends one token request. sentAt is taken before it goes out; a
// private_key_jwt assertion is made fresh for each attempt (its jti must not
// repeat).
func (g *grantClient) attempt(ctx context.Context, now func() time.Time) (*accessToken, error) {
	sentAt := now()
	params := url.Values{}
	for k, v := range g.params {
		params[k] = v
	}
	if err := g.auth.assertionParams(params, sentAt); err != nil {
		return nil, err
	}
	config := &clientcredentials.Config{
		ClientID:       g.auth.clientID,
		ClientSecret:   g.auth.secret(),
		TokenURL:       g.tokenURL,
		Scopes:         g.scopes,
		EndpointParams: params,
		AuthStyle:      g.auth.authStyle(),
	}
	tok, err := config.Token(ctx)
	if err != nil {
		return nil, err
	}
	return parseToken(tok, g.scopes, sentAt, g.assumedLifetime)
}

// backoff is the wait before retry number attempt+1: full jitter over
// retryBase doubled per attempt.
func (g *grantClient) backoff(attempt int) time.Duration {
	ceiling := g.retryBase << attempt
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}

// retryable tells whether a failed attempt may succeed if repeated, and how
// long the server asked to wait (Retry-After), if it did.
func retryable(err error) (bool, time.Duration) {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		if rerr.Response == nil {
			return false, 0
		}
		code := rerr.Response.StatusCode
		if code == http.StatusTooManyRequests || code >= 500 {
			return true, parseRetryAfter(rerr.Response.Header.Get("Retry-After"), time.Now())
		}
		return false, 0
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false, 0
	}
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var recordErr tls.RecordHeaderError
	var nerr net.Error
	switch {
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &recordErr):
		return false, 0 // a TLS handshake refused on either side will be refused again
	case errors.As(err, &nerr) && nerr.Timeout():
		return false, 0 // the time limit is spent
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return true, 0 // refused, reset, closed before answering
	}
	// The oauth2 library reports a body cut short (a reset mid-answer) only
	// as text.
	return strings.HasPrefix(err.Error(), "oauth2: cannot fetch token: "), 0
}

// parseRetryAfter reads Retry-After (RFC 9110 section 10.2.3): seconds, or
// an HTTP date.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.Atoi(value); err == nil {
		return max(time.Duration(seconds)*time.Second, 0)
	}
	if at, err := http.ParseTime(value); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// withNote appends to an error's message, keeping its HTTP status.
func withNote(err error, note string) error {
	if coded, ok := err.(logical.HTTPCodedError); ok {
		return logical.CodedError(coded.Code(), err.Error()+note)
	}
	return fmt.Errorf("%w%s", err, note)
}

// revoke asks the revocation endpoint (RFC 7009) to revoke an access token,
// authenticating as the client does at the token endpoint.
func (g *grantClient) revoke(ctx context.Context, token string, now func() time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.revocationURL, nil)
	if err != nil {
		return fmt.Errorf("revocation request to %s: %v", g.revocationURL, stripURL(err))
	}
	if err := g.auth.authenticate(req, form, now()); err != nil {
		return err
	}
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.ContentLength = int64(len(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	resp, err := g.httpClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("revocation request to %s timed out after %s", g.revocationURL, g.timeout)
		}
		return fmt.Errorf("revocation request to %s failed: %v", g.revocationURL, stripURL(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	// RFC 7009 answers 200, but any 2xx is success: some servers answer 204.
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var oauthErr struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	msg := fmt.Sprintf("revocation request to %s failed: %s", g.revocationURL, resp.Status)
	if json.Unmarshal(body, &oauthErr) == nil && oauthErr.Error != "" {
		msg += ": " + g.auth.scrub(oauthErr.Error)
		if oauthErr.Description != "" {
			msg += ": " + g.auth.scrub(oauthErr.Description)
		}
	}
	return errors.New(msg)
}

// parseToken turns the library's token into ours, deciding when it expires:
// from expires_in (RFC 6749 section 5.1) when the server sends it, else from
// a JWT access token's exp and iat claims (its lifetime, exp - iat, from when
// the request was sent; exp alone without iat), else after the environment's
// assumed lifetime. A token that is already expired is refused.
func parseToken(tok *oauth2.Token, requestedScopes []string, sentAt time.Time, assumedLifetime time.Duration) (*accessToken, error) {
	tokenType := tok.TokenType
	switch {
	case tokenType == "":
		tokenType = "Bearer" // the seeds' documented default
	case strings.EqualFold(tokenType, "bearer"):
		tokenType = "Bearer"
	default:
		return nil, upstreamError(fmt.Sprintf("the authorization server issued a token of type %q; only Bearer tokens are supported", tokenType))
	}

	issuedAt := sentAt.Add(-issueRounding)
	expiresAt, err := tokenExpiry(tok, issuedAt, assumedLifetime)
	if err != nil {
		return nil, upstreamError(err.Error())
	}

	scope, _ := rawField(tok, "scope")
	if scope == "" {
		// RFC 6749 section 5.1: omitted means the requested scope was granted.
		scope = strings.Join(requestedScopes, " ")
	}
	return &accessToken{
		value:     tok.AccessToken,
		tokenType: tokenType,
		scope:     scope,
		issuedAt:  issuedAt,
		expiresAt: expiresAt,
		data: map[string]interface{}{
			"access_token": tok.AccessToken,
			"token_type":   tokenType,
			"expires_at":   expiresAt.UTC().Format(time.RFC3339),
			"scope":        scope,
		},
	}, nil
}

// issueRounding is how much older than the request a token may be dated.
// Servers count expires_in and a JWT's iat and exp in whole seconds from a
// clock that they round down: a token asked for at 10.9 s may be dated 10 s,
// and then dies up to a second before sentAt + expires_in. Counting its
// lifetime from a second before the request keeps the engine's expiry (and
// so every lease) at or before the token's own.
const issueRounding = time.Second

// tokenExpiry decides when a token issued no earlier than issuedAt expires.
func tokenExpiry(tok *oauth2.Token, issuedAt time.Time, assumedLifetime time.Duration) (time.Time, error) {
	sentAt := issuedAt.Add(issueRounding)
	if raw, ok := rawField(tok, "expires_in"); ok {
		seconds, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("the token response's expires_in %q is not a number", raw)
		}
		if seconds <= 0 {
			return time.Time{}, fmt.Errorf("the token response's expires_in is %s: the token is already expired", raw)
		}
		// The oauth2 library caps expires_in at 2^31-1 seconds; so do we.
		seconds = min(seconds, float64(1<<31-1))
		return issuedAt.Add(time.Duration(seconds * float64(time.Second))), nil
	}
	if exp, iat, err := jwtTimes(tok.AccessToken); err == nil {
		if iat.IsZero() {
			if !exp.After(sentAt) {
				return time.Time{}, fmt.Errorf("the access token's exp claim (%s) is in the past", exp.Format(time.RFC3339))
			}
			return exp, nil
		}
		// The token's own lifetime, counted from when the request was sent,
		// rather than exp itself: the bank's clock and Vault's need not agree.
		if !exp.After(iat) {
			return time.Time{}, fmt.Errorf("the access token's exp claim (%s) is not after its iat claim (%s)",
				exp.Format(time.RFC3339), iat.Format(time.RFC3339))
		}
		return issuedAt.Add(exp.Sub(iat)), nil
	}
	return issuedAt.Add(assumedLifetime), nil
}

// rawField reads a field of the token response as a string, whichever of
// JSON (numbers, strings) or form encoding the server used.
func rawField(tok *oauth2.Token, key string) (string, bool) {
	switch v := tok.Extra(key).(type) {
	case nil:
		return "", false
	case string:
		return v, v != ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	default:
		return fmt.Sprint(v), true
	}
}

// upstreamError is a failure of the authorization server or the way to it:
// 502 (504 for timeouts), which Vault's clients retry.
func upstreamError(msg string) error { return logical.CodedError(http.StatusBadGateway, msg) }

// refusalError is the authorization server refusing the role's request
// (invalid_client, invalid_scope, ...): 400, because the role's settings must
// change first, and a 5xx would make Vault's clients and agents repeat a
// request the server will refuse again.
func refusalError(msg string) error { return logical.CodedError(http.StatusBadRequest, msg) }

// describeGrantError turns a failed grant into a message for the reader. It
// carries the status and the server's RFC 6749 section 5.2 error and
// error_description, never the request or the raw response body.
// scrub cleans the text the server chose (error, error_description).
func describeGrantError(err error, tokenURL string, timeout time.Duration, scrub func(string) string) error {
	if _, ok := err.(logical.HTTPCodedError); ok {
		return err // described already (parseToken)
	}
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		msg := describeRetrieveError(rerr, tokenURL, scrub)
		if isRefusal(rerr) {
			return refusalError(msg)
		}
		return upstreamError(msg)
	}
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()) {
		return logical.CodedError(http.StatusGatewayTimeout,
			fmt.Sprintf("token request to %s timed out after %s", tokenURL, timeout))
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return upstreamError(fmt.Sprintf("token request to %s failed: %v", tokenURL, uerr.Err))
	}
	// The oauth2 library reports a body cut short only as text.
	if rest, cut := strings.CutPrefix(err.Error(), "oauth2: cannot fetch token: "); cut {
		return upstreamError(fmt.Sprintf("token request to %s failed while reading the answer: %s", tokenURL, rest))
	}
	// The oauth2 library's own parse errors ("oauth2: cannot parse json: ...").
	return upstreamError(fmt.Sprintf("the answer from %s is not a valid token response: %s",
		tokenURL, strings.TrimPrefix(err.Error(), "oauth2: ")))
}

// isRefusal tells a refusal of this client's request (4xx, or an OAuth error
// code on a 200) from the server failing; 429 Too Many Requests is the server
// failing to keep up.
func isRefusal(rerr *oauth2.RetrieveError) bool {
	if rerr.Response == nil {
		return rerr.ErrorCode != ""
	}
	code := rerr.Response.StatusCode
	switch {
	case code == http.StatusTooManyRequests:
		return false
	case code >= 400 && code < 500:
		return true
	case code >= 200 && code < 300:
		return rerr.ErrorCode != ""
	}
	return false
}

func describeRetrieveError(rerr *oauth2.RetrieveError, tokenURL string, scrub func(string) string) string {
	status := "an error"
	if rerr.Response != nil {
		status = rerr.Response.Status
	}
	msg := fmt.Sprintf("token request to %s failed: %s", tokenURL, status)
	if rerr.ErrorCode != "" {
		msg += ": " + scrub(rerr.ErrorCode)
		if rerr.ErrorDescription != "" {
			msg += ": " + scrub(rerr.ErrorDescription)
		}
		return msg
	}
	if rerr.Response == nil {
		return msg
	}
	if code := rerr.Response.StatusCode; code >= 300 && code < 400 {
		return msg + fmt.Sprintf(" (a redirect to %q; token endpoints are never followed across redirects)",
			rerr.Response.Header.Get("Location"))
	}
	contentType, _, _ := mime.ParseMediaType(rerr.Response.Header.Get("Content-Type"))
	if contentType == "" {
		contentType = "undeclared content type"
	}
	return msg + fmt.Sprintf(" with %d bytes of %s and no OAuth error code", len(rerr.Body), contentType)
}
