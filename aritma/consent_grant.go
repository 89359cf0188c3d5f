package aritma

// The token requests of the user-consent grants: the authorization code
// exchange, the refresh, and the password grant. They share one form post
// with the role's client authentication, whose errors are shaped like the
// oauth2 library's, so that retryable and describeGrantError treat every
// grant alike.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// Grant types, as the token endpoint's grant_type names them.
const (
	grantClientCredentials = "client_credentials"
	grantAuthorizationCode = "authorization_code"
	grantPassword          = "password"
	grantRefreshToken      = "refresh_token"
	grantImplicit          = "implicit"
)

// grantTypes are those a role may allow.
var grantTypes = []string{grantClientCredentials, grantAuthorizationCode, grantPassword}

const implicitRefusal = "implicit is refused: its access token is delivered to the browser in the URL fragment " +
	"and never reaches Vault, it has no refresh token, RFC 9700 section 2.1.2 says not to use it and OAuth 2.1 " +
	"removes it; authorization_code (with PKCE) gets the same consent from the bank's customer"

// consentAnswer is a successful token response of a user-consent grant.
// A refresh token that came with an access token the engine refuses is
// still returned, with the refusal in tokenErr: the old refresh token may
// be spent already, and the new one is the only way back.
type consentAnswer struct {
	token        *accessToken
	refreshToken string
	tokenErr     error
}

// consentRequest posts form (its grant_type set) to the token endpoint as
// the role's client. It is never retried: a code is single-use and a
// rotated refresh token spent once it reaches the server.
func (g *grantClient) consentRequest(ctx context.Context, form url.Values, scopes []string, now func() time.Time) (*consentAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	sentAt := now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.tokenURL, nil)
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %v", g.tokenURL, stripURL(err))
	}
	if err := g.auth.authenticate(req, form, sentAt); err != nil {
		return nil, err
	}
	body := form.Encode()
	req.Body = io.NopCloser(strings.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := g.httpClient.Do(req)
	if err != nil {
		return nil, err // a *url.Error, as the oauth2 library's
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("oauth2: cannot fetch token: %v", err)
	}
	var fields map[string]interface{}
	jsonErr := json.Unmarshal(raw, &fields)
	code, _ := fields["error"].(string)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || code != "" {
		description, _ := fields["error_description"].(string)
		return nil, &oauth2.RetrieveError{Response: resp, Body: raw, ErrorCode: code, ErrorDescription: description}
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("oauth2: cannot parse json: %v", jsonErr)
	}
	access, _ := fields["access_token"].(string)
	refresh, _ := fields["refresh_token"].(string)
	if access == "" {
		return nil, errors.New("oauth2: server response missing access_token")
	}
	tokenType, _ := fields["token_type"].(string)
	tok := (&oauth2.Token{AccessToken: access, TokenType: tokenType, RefreshToken: refresh}).WithExtra(fields)
	parsed, err := parseToken(tok, scopes, sentAt, g.assumedLifetime)
	return &consentAnswer{token: parsed, refreshToken: refresh, tokenErr: err}, nil
}

// exchangeCode trades an authorization code for tokens (RFC 6749 section
// 4.1.3), with the PKCE verifier when there is one (RFC 7636 section 4.5).
func (g *grantClient) exchangeCode(ctx context.Context, code, redirectURI, verifier string, scopes []string, now func() time.Time) (*consentAnswer, error) {
	form := url.Values{"grant_type": {grantAuthorizationCode}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return g.consentRequest(ctx, form, scopes, now)
}

// refresh runs the refresh grant (RFC 6749 section 6) for the scope that
// was granted.
func (g *grantClient) refresh(ctx context.Context, refreshToken string, scopes []string, now func() time.Time) (*consentAnswer, error) {
	form := url.Values{"grant_type": {grantRefreshToken}, "refresh_token": {refreshToken}}
	return g.consentRequest(ctx, form, scopes, now)
}

// passwordGrant runs the resource owner password grant (RFC 6749 section
// 4.3).
func (g *grantClient) passwordGrant(ctx context.Context, username, password string, scopes []string, now func() time.Time) (*consentAnswer, error) {
	form := url.Values{"grant_type": {grantPassword}, "username": {username}, "password": {password}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	return g.consentRequest(ctx, form, scopes, now)
}

// refreshRetryable reports whether a failed refresh may be sent again with
// the same refresh token: the server answered 5xx or 429 (it processed
// nothing, or says so), or the connection was never made. A connection that
// broke after the request went out may have spent a rotated refresh token,
// and sending it again would look like a replay to the server (which may
// then revoke the whole grant): such a refresh waits for the next read.
func refreshRetryable(err error) (bool, time.Duration) {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		return retryable(err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true, 0
	}
	return false, 0
}
