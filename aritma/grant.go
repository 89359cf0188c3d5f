package aritma

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
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
	// issuedAt is when the token request was sent: the token is no older,
	// so expiresAt computed from it is never later than the real expiry.
	issuedAt  time.Time
	expiresAt time.Time
}

func (t *accessToken) lifetime() time.Duration { return t.expiresAt.Sub(t.issuedAt) }

// grantClient runs the client_credentials grant for one role.
type grantClient struct {
	config     *clientcredentials.Config
	httpClient *http.Client
	timeout    time.Duration
	// assumedLifetime is used when the response has no expires_in and the
	// token is not a JWT with an exp claim.
	assumedLifetime time.Duration
}

// newHTTPClient builds the client for one environment's token endpoint: its
// own CA roots, a timeout, and no redirects. A redirect from a token endpoint
// would carry the client's credentials to another address.
func newHTTPClient(env *environmentEntry, timeout time.Duration) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	pool, err := parseCACert(env.CACert)
	if err != nil {
		return nil, fmt.Errorf("ca_cert %v", err)
	}
	transport.TLSClientConfig.RootCAs = pool // nil: the system's roots
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}

// fetch runs one grant. sentAt is taken before the request goes out.
func (g *grantClient) fetch(ctx context.Context, now func() time.Time) (*accessToken, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, g.httpClient)

	sentAt := now()
	tok, err := g.config.Token(ctx)
	if err != nil {
		return nil, describeGrantError(err, g.config.TokenURL, g.timeout)
	}
	return parseToken(tok, g.config.Scopes, sentAt, g.assumedLifetime)
}

// parseToken turns the library's token into ours, deciding when it expires:
// from expires_in (RFC 6749 section 5.1) when the server sends it, else from
// the exp claim of a JWT access token, else after the environment's assumed
// lifetime. A token that is already expired is refused.
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

	expiresAt, err := tokenExpiry(tok, sentAt, assumedLifetime)
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
		issuedAt:  sentAt,
		expiresAt: expiresAt,
	}, nil
}

func tokenExpiry(tok *oauth2.Token, sentAt time.Time, assumedLifetime time.Duration) (time.Time, error) {
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
		return sentAt.Add(time.Duration(seconds * float64(time.Second))), nil
	}
	if exp, err := jwtExpiry(tok.AccessToken); err == nil {
		if !exp.After(sentAt) {
			return time.Time{}, fmt.Errorf("the access token's exp claim (%s) is in the past", exp.Format(time.RFC3339))
		}
		return exp, nil
	}
	return sentAt.Add(assumedLifetime), nil
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
func describeGrantError(err error, tokenURL string, timeout time.Duration) error {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		msg := describeRetrieveError(rerr, tokenURL)
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

func describeRetrieveError(rerr *oauth2.RetrieveError, tokenURL string) string {
	status := "an error"
	if rerr.Response != nil {
		status = rerr.Response.Status
	}
	msg := fmt.Sprintf("token request to %s failed: %s", tokenURL, status)
	if rerr.ErrorCode != "" {
		msg += ": " + rerr.ErrorCode
		if rerr.ErrorDescription != "" {
			msg += ": " + rerr.ErrorDescription
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
