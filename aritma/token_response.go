package aritma

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
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

// parseToken turns the library's token into ours, deciding when it expires:
// from expires_in (RFC 6749 section 5.1) when the server sends it, else from
// a JWT access token's exp and iat claims (its lifetime, exp - iat, from when
// the request was sent; exp alone without iat), else after the environment's
// assumed lifetime. A token that is already expired is refused.
func parseToken(tok *oauth2.Token, requestedScopes []string, sentAt time.Time, assumedLifetime time.Duration) (*accessToken, error) {
	tokenType := tok.TokenType
	switch {
	case tokenType == "":
		tokenType = "Bearer" // RFC 6750; what the banks document
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
	if !expiresAt.After(sentAt) {
		// expires_in=1, say: with the second the server may have rounded
		// off, the token may be dead when it arrives.
		return nil, upstreamError(fmt.Sprintf("the token expires within %s of the request (less than the second a server's clock may round off): it may already be expired",
			expiresAt.Sub(issuedAt)))
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
