package aritma

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

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

// Retry policy. The client_credentials grant is idempotent: repeating it
// only issues another token. So a grant whose failure may pass (a connection
// error, a 5xx, a 429) is tried again, at most maxGrantRetries times, after
// an exponential backoff with full jitter, or after the server's Retry-After
// when that fits in what is left of the request's time limit. Refusals (4xx)
// and answers that are not token responses fail at once: repeating them
// would only fail again.
const maxGrantRetries = 2

// grantResult is what a grant did besides its error: the token, how many
// requests it sent, and whether it switched to the next client secret.
type grantResult struct {
	token    *accessToken
	attempts int
	switched bool
}

// fetch runs the grant, with the retries above, within the time limit. When
// the bank refuses the client (invalid_client) and the role has a next
// client secret, the grant is tried with it, within the same limit; if the
// bank takes it, every later request sends it (switched) and the role's
// owner stores the switch.
func (g *grantClient) fetch(ctx context.Context, now func() time.Time) (grantResult, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.httpClient)

	secret := g.auth.secret()
	tok, attempts, err := g.fetchWith(ctx, now, secret)
	if err == nil || !g.auth.canSwitchFrom(secret) || !refusedClient(err) {
		return grantResult{token: tok, attempts: attempts}, err
	}
	tok, more, nextErr := g.fetchWith(ctx, now, g.auth.nextSecret)
	attempts += more
	if nextErr != nil {
		return grantResult{attempts: attempts}, withNote(err, "; next_client_secret was tried too, and failed: "+nextErr.Error())
	}
	g.auth.usingNext.Store(true)
	return grantResult{token: tok, attempts: attempts, switched: true}, nil
}

// fetchWith runs the grant with secret as the client secret (if the method
// sends one), retrying as above, and says how many requests it sent.
func (g *grantClient) fetchWith(ctx context.Context, now func() time.Time, secret string) (*accessToken, int, error) {
	for attempt := 0; ; attempt++ {
		tok, err := g.attempt(ctx, now, secret)
		if err == nil {
			return tok, attempt + 1, nil
		}
		again, retryAfter := retryable(err)
		if !again || attempt == maxGrantRetries {
			return nil, attempt + 1, describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub)
		}
		wait := g.backoff(attempt)
		if retryAfter > 0 {
			wait = retryAfter
		}
		if deadline, _ := ctx.Deadline(); time.Until(deadline) < wait {
			return nil, attempt + 1, withNote(describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub),
				fmt.Sprintf("; not retried: the next try (in %s) would pass the %s time limit", wait.Round(time.Millisecond), g.timeout))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, attempt + 1, describeGrantError(err, g.tokenURL, g.timeout, g.auth.scrub)
		case <-timer.C:
		}
	}
}

// attempt sends one token request. sentAt is taken before it goes out; a
// private_key_jwt assertion is made fresh for each attempt (its jti must not
// repeat).
func (g *grantClient) attempt(ctx context.Context, now func() time.Time, secret string) (*accessToken, error) {
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
		ClientSecret:   secret,
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

// revoke asks the revocation endpoint (RFC 7009) to revoke a token (hint:
// access_token or refresh_token), authenticating as the client does at the
// token endpoint.
func (g *grantClient) revoke(ctx context.Context, token, hint string, now func() time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
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
