package aritma

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// A token's life counts from a second before its request was sent
// (issueRounding): servers date tokens with a clock rounded down to the
// second.
func TestParseToken(t *testing.T) {
	sentAt := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	issued := sentAt.Add(-time.Second)
	jwtExp := sentAt.Add(20 * time.Minute)
	for name, tc := range map[string]struct {
		token       string
		tokenType   string
		raw         map[string]interface{}
		wantType    string
		wantScope   string
		wantExpires time.Time
		wantErr     string
	}{
		"seed example": {
			token: "eyJ...", tokenType: "Bearer",
			raw:      map[string]interface{}{"expires_in": 3600.0, "scope": "bankservice"},
			wantType: "Bearer", wantScope: "bankservice", wantExpires: issued.Add(time.Hour),
		},
		"lower-case bearer": {
			token: "t", tokenType: "bearer", raw: map[string]interface{}{"expires_in": 60.0},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add(time.Minute),
		},
		"no token_type means Bearer": {
			token: "t", raw: map[string]interface{}{"expires_in": 60.0},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add(time.Minute),
		},
		"expires_in as string": {
			token: "t", tokenType: "Bearer", raw: map[string]interface{}{"expires_in": "300"},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add(5 * time.Minute),
		},
		"huge expires_in is capped": {
			token: "t", tokenType: "Bearer", raw: map[string]interface{}{"expires_in": 1e12},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add((1<<31 - 1) * time.Second),
		},
		"JWT exp when no expires_in": {
			token: testJWT(fmt.Sprintf(`{"exp":%d}`, jwtExp.Unix())), tokenType: "Bearer", raw: map[string]interface{}{},
			wantType: "Bearer", wantScope: "api", wantExpires: jwtExp,
		},
		"expires_in wins over JWT exp": {
			token: testJWT(fmt.Sprintf(`{"exp":%d}`, jwtExp.Unix())), tokenType: "Bearer", raw: map[string]interface{}{"expires_in": 60.0},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add(time.Minute),
		},
		"assumed lifetime for opaque token": {
			token: "opaque", tokenType: "Bearer", raw: map[string]interface{}{},
			wantType: "Bearer", wantScope: "api", wantExpires: issued.Add(5 * time.Minute),
		},
		"expires_in zero":     {token: "t", raw: map[string]interface{}{"expires_in": 0.0}, wantErr: "expires_in is 0: the token is already expired"},
		"expires_in one":      {token: "t", raw: map[string]interface{}{"expires_in": 1.0}, wantErr: "the token expires within 1s of the request"},
		"expires_in negative": {token: "t", raw: map[string]interface{}{"expires_in": -30.0}, wantErr: "expires_in is -30"},
		"expires_in garbage":  {token: "t", raw: map[string]interface{}{"expires_in": "soon"}, wantErr: `expires_in "soon" is not a number`},
		"JWT already expired": {token: testJWT(fmt.Sprintf(`{"exp":%d}`, sentAt.Add(-time.Second).Unix())), raw: map[string]interface{}{}, wantErr: "exp claim (2026-11-23T15:59:59Z) is in the past"},
		"DPoP token":          {token: "t", tokenType: "DPoP", raw: map[string]interface{}{"expires_in": 60.0}, wantErr: `token of type "DPoP"`},
	} {
		t.Run(name, func(t *testing.T) {
			tok := (&oauth2.Token{AccessToken: tc.token, TokenType: tc.tokenType}).WithExtra(tc.raw)
			got, err := parseToken(tok, []string{"api"}, sentAt, 5*time.Minute)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr != "" {
				return
			}
			if got.value != tc.token || got.tokenType != tc.wantType || got.scope != tc.wantScope {
				t.Errorf("token = %q/%q/%q, want %q/%q/%q", got.value, got.tokenType, got.scope, tc.token, tc.wantType, tc.wantScope)
			}
			if !got.expiresAt.Equal(tc.wantExpires) || !got.issuedAt.Equal(issued) {
				t.Errorf("expiresAt = %s, issuedAt = %s; want %s, %s", got.expiresAt, got.issuedAt, tc.wantExpires, issued)
			}
		})
	}
}

// Form-encoded token responses (some servers send them) are read too.
func TestParseToken_FormEncodedResponse(t *testing.T) {
	sentAt := time.Unix(0, 0)
	tok := (&oauth2.Token{AccessToken: "t", TokenType: "bearer"}).WithExtra(url.Values{"expires_in": {"120"}, "scope": {"api"}})
	got, err := parseToken(tok, nil, sentAt, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if got.lifetime() != 2*time.Minute || got.scope != "api" {
		t.Errorf("lifetime %s scope %q, want 2m api", got.lifetime(), got.scope)
	}
}

func TestDescribeGrantError(t *testing.T) {
	const tokenURL = "https://id.aritma.io/connect/token"
	response := func(status int, header http.Header) *http.Response {
		if header == nil {
			header = http.Header{}
		}
		return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: header}
	}
	for name, tc := range map[string]struct {
		err      error
		wantCode int
		wantMsg  string
	}{
		"oauth error with description": {
			err:      &oauth2.RetrieveError{Response: response(400, nil), ErrorCode: "unauthorized_client", ErrorDescription: "grant not allowed", Body: []byte("{}")},
			wantCode: 400,
			wantMsg:  "token request to " + tokenURL + " failed: 400 Bad Request: unauthorized_client: grant not allowed",
		},
		"no error code, JSON body": {
			err:      &oauth2.RetrieveError{Response: response(500, http.Header{"Content-Type": {"application/json; charset=utf-8"}}), Body: []byte(`{"oops":1}`)},
			wantCode: 502,
			wantMsg:  "token request to " + tokenURL + " failed: 500 Internal Server Error with 10 bytes of application/json and no OAuth error code",
		},
		"error code on a 200": {
			err:      &oauth2.RetrieveError{Response: response(200, nil), ErrorCode: "invalid_client"},
			wantCode: 400,
			wantMsg:  "token request to " + tokenURL + " failed: 200 OK: invalid_client",
		},
		"429 is the server failing, not a refusal": {
			err:      &oauth2.RetrieveError{Response: response(429, nil), ErrorCode: "slow_down"},
			wantCode: 502,
			wantMsg:  "token request to " + tokenURL + " failed: 429 Too Many Requests: slow_down",
		},
		"403 without a code is a refusal": {
			err:      &oauth2.RetrieveError{Response: response(403, http.Header{"Content-Type": {"text/html"}}), Body: []byte("<h1>no</h1>")},
			wantCode: 400,
			wantMsg:  "token request to " + tokenURL + " failed: 403 Forbidden with 11 bytes of text/html and no OAuth error code",
		},
		"no content type": {
			err:      &oauth2.RetrieveError{Response: response(503, nil)},
			wantCode: 502,
			wantMsg:  "token request to " + tokenURL + " failed: 503 Service Unavailable with 0 bytes of undeclared content type and no OAuth error code",
		},
		"deadline": {
			err:      fmt.Errorf("wrapped: %w", context.DeadlineExceeded),
			wantCode: 504,
			wantMsg:  "token request to " + tokenURL + " timed out after 10s",
		},
		"network": {
			err:      &url.Error{Op: "Post", URL: tokenURL, Err: errors.New("dial tcp: lookup id.aritma.io: no such host")},
			wantCode: 502,
			wantMsg:  "token request to " + tokenURL + " failed: dial tcp: lookup id.aritma.io: no such host",
		},
		"library parse error": {
			err:      errors.New("oauth2: cannot parse json: unexpected end of JSON input"),
			wantCode: 502,
			wantMsg:  "the answer from " + tokenURL + " is not a valid token response: cannot parse json: unexpected end of JSON input",
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := describeGrantError(tc.err, tokenURL, 10*time.Second, func(s string) string { return s })
			coded, ok := err.(interface{ Code() int })
			if !ok || coded.Code() != tc.wantCode {
				t.Errorf("status = %v, want %d", err, tc.wantCode)
			}
			if err.Error() != tc.wantMsg {
				t.Errorf("message = %q, want %q", err, tc.wantMsg)
			}
		})
	}
}
