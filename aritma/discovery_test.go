package aritma

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// metadataServer serves authorization server metadata at path, naming
// issuer (the server's own URL unless told otherwise).
func metadataServer(t *testing.T, path string, doc func(base string) map[string]interface{}) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, http.StatusOK, doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestMetadataURLs(t *testing.T) {
	for issuer, want := range map[string][]string{
		"https://id.aritma.io": {"https://id.aritma.io/.well-known/openid-configuration", "https://id.aritma.io/.well-known/oauth-authorization-server"},
		"https://bank.example/tenant/": {"https://bank.example/tenant/.well-known/openid-configuration",
			"https://bank.example/.well-known/oauth-authorization-server/tenant"},
	} {
		if got := metadataURLs(issuer); !reflect.DeepEqual(got, want) {
			t.Errorf("metadataURLs(%q) = %q, want %q", issuer, got, want)
		}
	}
}

// An environment with an issuer takes its endpoints and auth methods from
// the issuer's metadata, found at either well-known location.
func TestDiscovery_EnvironmentFromIssuer(t *testing.T) {
	for name, path := range map[string]string{
		"OpenID Connect location": "/.well-known/openid-configuration",
		"RFC 8414 location":       "/.well-known/oauth-authorization-server",
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			tokens := newFakeAuthServer(t)
			md := metadataServer(t, path, func(base string) map[string]interface{} {
				return map[string]interface{}{
					"issuer":                                base,
					"token_endpoint":                        tokens.tokenURL(),
					"revocation_endpoint":                   tokens.URL + "/connect/revocation",
					"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "private_key_jwt"},
				}
			})
			e.mustWrite(t, "environments/bank", map[string]interface{}{"issuer": md.URL, "auth_method": "client_secret_basic"})
			env := e.do(t, logical.ReadOperation, "environments/bank", nil).Data
			discovered := env["discovered"].(map[string]interface{})
			if env["token_url"] != tokens.tokenURL() || discovered["revocation_endpoint"] != tokens.URL+"/connect/revocation" ||
				!reflect.DeepEqual(discovered["token_endpoint_auth_methods_supported"], []string{"client_secret_basic", "private_key_jwt"}) {
				t.Errorf("environment = %v", env)
			}

			e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "bank", "client_id": "c", "client_secret": "s3cret"})
			e.readToken(t, "r")
			if auth := tokens.request(0).Authorization; !strings.HasPrefix(auth, "Basic ") {
				t.Errorf("the grant did not use client_secret_basic: %q", auth)
			}

			// A method the server does not list is refused, naming what it lists.
			resp := e.write(t, "roles/post", map[string]interface{}{
				"environment": "bank", "client_id": "c", "client_secret": "s3cret", "auth_method": "client_secret_post",
			})
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(),
				"does not support client_secret_post; its metadata lists client_secret_basic, private_key_jwt") {
				t.Errorf("role with an unsupported method: %v", respError(resp))
			}
		})
	}
}

func TestDiscovery_Refusals(t *testing.T) {
	for name, tc := range map[string]struct {
		doc     func(base string) map[string]interface{}
		data    map[string]interface{}
		wantErr string
	}{
		"issuer mismatch": {
			doc: func(base string) map[string]interface{} {
				return map[string]interface{}{"issuer": "https://evil.example", "token_endpoint": base + "/token"}
			},
			wantErr: `names issuer "https://evil.example", not "http://127.0.0.1:`,
		},
		"no token endpoint": {
			doc:     func(base string) map[string]interface{} { return map[string]interface{}{"issuer": base} },
			wantErr: "token_endpoint is required",
		},
		"plain http token endpoint elsewhere": {
			doc: func(base string) map[string]interface{} {
				return map[string]interface{}{"issuer": base, "token_endpoint": "http://bank.example/token"}
			},
			wantErr: "token_endpoint must use https",
		},
		"environment's method unsupported": {
			doc: func(base string) map[string]interface{} {
				return map[string]interface{}{"issuer": base, "token_endpoint": base + "/token", "token_endpoint_auth_methods_supported": []string{"private_key_jwt"}}
			},
			wantErr: "auth_method: the authorization server at http://127.0.0.1:",
		},
		"both token_url and issuer": {
			doc:     func(base string) map[string]interface{} { return nil },
			data:    map[string]interface{}{"token_url": "https://bank.example/token"},
			wantErr: "set token_url or issuer, not both",
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			md := metadataServer(t, "/.well-known/openid-configuration", tc.doc)
			data := map[string]interface{}{"issuer": md.URL}
			for k, v := range tc.data {
				data[k] = v
			}
			resp := e.write(t, "environments/bank", data)
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", respError(resp), tc.wantErr)
			}
			if got := e.do(t, logical.ReadOperation, "environments/bank", nil); got != nil {
				t.Errorf("a refused environment was stored: %v", got.Data)
			}
		})
	}
}

func TestDiscovery_NoMetadataAnywhere(t *testing.T) {
	e := newTestEnv(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	resp := e.write(t, "environments/bank", map[string]interface{}{"issuer": srv.URL})
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "no metadata for issuer "+srv.URL) {
		t.Errorf("error = %v", respError(resp))
	}
}

// Item 8: an https issuer's metadata cannot send the client's credentials
// over plain http, not even to a loopback address; a loopback http issuer
// (a local server in development) may name http endpoints.
func TestDiscovery_HTTPEndpointsOnlyFromALoopbackHTTPIssuer(t *testing.T) {
	e := newTestEnv(t)
	var secure *httptest.Server
	secure = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"issuer": secure.URL, "token_endpoint": "http://127.0.0.1:9/token", "revocation_endpoint": secure.URL + "/revoke",
		})
	}))
	t.Cleanup(secure.Close)
	resp := e.write(t, "environments/bank", map[string]interface{}{"issuer": secure.URL, "ca_cert": serverCAPEM(secure)})
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "token_endpoint http://127.0.0.1:9/token is http; an https issuer's endpoints must be https too") {
		t.Errorf("https issuer naming an http endpoint: %v", respError(resp))
	}

	local := metadataServer(t, "/.well-known/openid-configuration", func(base string) map[string]interface{} {
		return map[string]interface{}{"issuer": base, "token_endpoint": base + "/token"}
	})
	e.mustWrite(t, "environments/local", map[string]interface{}{"issuer": local.URL})
}
