package aritma

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Fuzz targets for hostile input. `make fuzz` runs each for a fixed time;
// seeds are below and in testdata/fuzz.

// answerTransport answers every request in-process with a fixed response.
type answerTransport struct {
	status      int
	contentType string
	body        []byte
}

func (a answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{}
	if a.contentType != "" {
		h.Set("Content-Type", a.contentType)
	}
	return &http.Response{
		StatusCode: a.status, Status: http.StatusText(a.status), Header: h,
		Body: io.NopCloser(bytes.NewReader(a.body)), Request: req,
	}, nil
}

// FuzzTokenResponse feeds arbitrary token endpoint answers through the
// grant (the oauth2 library's parser and ours): no panic, and what comes out
// is either an error or a live Bearer token.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, "application/json", []byte(`{"access_token":"eyJ","expires_in":3600,"token_type":"Bearer","scope":"api"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"x","expires_in":"3600","token_type":"bearer"}`))
	f.Add(200, "application/x-www-form-urlencoded", []byte(`access_token=x&expires_in=60&token_type=bearer`))
	f.Add(400, "application/json", []byte(`{"error":"invalid_client","error_description":"bad"}`))
	f.Add(200, "application/json", []byte(`{"access_token":"a.eyJleHAiOjk5OTk5OTk5OTl9.c","token_type":"Bearer"}`))
	f.Add(503, "text/html", []byte(`<html></html>`))
	f.Add(200, "", []byte(`{"access_token":"x","expires_in":-1}`))
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		if status < 100 || status > 599 {
			status = 200
		}
		g := &grantClient{
			tokenURL:        "https://id.aritma.io/connect/token",
			auth:            &clientAuth{method: authClientSecretPost, clientID: "c", clientSecret: "s3cret-fuzz"},
			params:          url.Values{},
			httpClient:      &http.Client{Transport: answerTransport{status, contentType, body}},
			timeout:         time.Second,
			assumedLifetime: 5 * time.Minute,
			retryBase:       time.Microsecond,
		}
		res, err := g.fetch(context.Background(), func() time.Time { return now })
		if err != nil {
			if _, coded := err.(logical.HTTPCodedError); !coded {
				t.Fatalf("uncoded error %q", err)
			}
			if strings.Contains(err.Error(), "s3cret-fuzz") {
				t.Fatalf("error carries the client secret: %q", err)
			}
			return
		}
		if tok := res.token; tok.value == "" || tok.tokenType != "Bearer" || !tok.expiresAt.After(now) {
			t.Fatalf("handed out %+v", res.token)
		}
	})
}

// FuzzJWTExpiry: no panic; an exp read is a positive time, an iat read is none or positive.
func FuzzJWTExpiry(f *testing.F) {
	f.Add(testJWT(`{"exp":1663592081}`))
	f.Add(testJWT(`{"exp":1.5e9}`))
	f.Add("a.b.c")
	f.Add("..")
	f.Add(testJWT(`{"exp":"1"}`))
	f.Fuzz(func(t *testing.T, token string) {
		exp, iat, err := jwtTimes(token)
		if err == nil && (exp.Unix() <= 0 || (!iat.IsZero() && iat.Unix() <= 0)) {
			t.Fatalf("exp %s, iat %s from %q", exp, iat, token)
		}
	})
}

// FuzzURLsAndScopes: the URL and scope validators never panic, and what they
// accept is what they promise.
func FuzzURLsAndScopes(f *testing.F) {
	for _, seed := range []string{
		"https://id.aritma.io/connect/token", "http://127.0.0.1:8080/t", "http://[::1]/t", "https://u:p@x/",
		"api bankservice", "IDENTITY", `a"b`, "https://x/#f", "socks5://proxy:1080", "urn:bank:api", "http://localhost.evil/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validateTokenURL(s) == nil {
			u, err := url.Parse(s)
			if err != nil || u.User != nil || u.Fragment != "" {
				t.Fatalf("accepted token URL %q", s)
			}
			if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
				t.Fatalf("accepted non-https token URL %q", s)
			}
		}
		_ = validateIssuer(s)
		_ = validateProxyURL(s)
		_ = validateResources([]string{s})
		_ = validateClientID(s)
		scopes, err := normalizeScopes([]string{s})
		if err == nil {
			for _, scope := range scopes {
				if scope == "" || strings.ContainsAny(scope, " \"\\") {
					t.Fatalf("accepted scope %q", scope)
				}
			}
		}
	})
}

// FuzzPEM: the PEM readers (CA bundles, private keys, client certificates)
// never panic, and an accepted private key signs.
func FuzzPEM(f *testing.F) {
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n")
	f.Add("-----BEGIN EC PRIVATE KEY-----\n\n-----END EC PRIVATE KEY-----\n")
	f.Add("not pem")
	f.Fuzz(func(t *testing.T, data string) {
		_, _ = parseCACert(data)
		_, _, _ = parseTLSClientCert(data, data)
		key, err := importSigningKey(data, "", time.Now())
		if err != nil {
			return
		}
		signer, err := newAssertionSigner(key)
		if err != nil {
			t.Fatalf("an imported key cannot sign: %v", err)
		}
		if _, err := signer.assertion("c", "https://x", time.Now()); err != nil {
			t.Fatalf("an imported key cannot sign: %v", err)
		}
	})
}

// FuzzDurationFields writes arbitrary durations through the backend, as
// `vault write` would: a refusal, or a value within the field's bounds.
func FuzzDurationFields(f *testing.F) {
	for _, seed := range []string{"60", "1m", "-5s", "25h", "1h30m", "soon", "9999999999999", "0", "1e3"} {
		f.Add(seed)
	}
	e := newTestEnv(f) // testing.F is a testing.TB: a setup failure fails the fuzz target
	f.Fuzz(func(t *testing.T, value string) {
		resp, err := e.request(logical.UpdateOperation, "config", map[string]interface{}{
			"default_min_remaining": value, "request_timeout": value,
		})
		if err != nil {
			t.Fatalf("Go error for %q: %v", value, err)
		}
		if resp != nil && resp.IsError() {
			return
		}
		cfg, err := getConfig(context.Background(), e.storage)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DefaultMinRemaining < 0 || cfg.DefaultMinRemaining > maxMinRemaining ||
			cfg.RequestTimeout < minRequestTimeout || cfg.RequestTimeout > maxRequestTimeout {
			t.Fatalf("stored out-of-bounds durations for %q: %+v", value, cfg)
		}
	})
}
