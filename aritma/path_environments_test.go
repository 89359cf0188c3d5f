package aritma

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestEnvironments_BuiltinsExistFromTheStart(t *testing.T) {
	e := newTestEnv(t)
	list := e.do(t, logical.ListOperation, "environments/", nil)
	if got := list.Data["keys"]; !reflect.DeepEqual(got, []string{"development", "production"}) {
		t.Errorf("list = %v, want [development production]", got)
	}
	for name, url := range map[string]string{
		"production":  "https://id.aritma.io/connect/token",
		"development": "https://id.dev.aritma.io/connect/token",
	} {
		got := e.do(t, logical.ReadOperation, "environments/"+name, nil).Data
		if got["token_url"] != url || got["auth_method"] != "client_secret_post" || got["builtin"] != true {
			t.Errorf("%s = %v, want token_url %s, client_secret_post, builtin", name, got, url)
		}
	}
}

func TestEnvironments_OverrideAndResetBuiltin(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "environments/development", map[string]interface{}{"token_url": "http://127.0.0.1:9999/connect/token"})
	got := e.do(t, logical.ReadOperation, "environments/development", nil).Data
	if got["token_url"] != "http://127.0.0.1:9999/connect/token" || got["auth_method"] != "client_secret_post" {
		t.Errorf("override = %v", got)
	}
	e.do(t, logical.DeleteOperation, "environments/development", nil)
	got = e.do(t, logical.ReadOperation, "environments/development", nil).Data
	if got["token_url"] != "https://id.dev.aritma.io/connect/token" {
		t.Errorf("after delete token_url = %v, want the default back", got["token_url"])
	}
}

func TestEnvironments_CustomForAnotherBank(t *testing.T) {
	e := newTestEnv(t)
	ca := testCertPEM(t)
	e.mustWrite(t, "environments/otherbank", map[string]interface{}{
		"token_url":              "https://auth.otherbank.example/oauth2/token",
		"auth_method":            "client_secret_basic",
		"ca_cert":                ca,
		"request_timeout":        "30s",
		"assumed_token_lifetime": "10m",
	})
	got := e.do(t, logical.ReadOperation, "environments/otherbank", nil).Data
	want := map[string]interface{}{
		"token_url":              "https://auth.otherbank.example/oauth2/token",
		"issuer":                 "",
		"revocation_url":         "",
		"authorization_url":      "",
		"auth_method":            "client_secret_basic",
		"assertion_audience":     "",
		"ca_cert":                ca,
		"tls_client_cert":        "",
		"tls_client_key_set":     false,
		"proxy_url":              "",
		"request_timeout":        int64(30),
		"assumed_token_lifetime": int64(600),
		"builtin":                false,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read = %v\nwant %v", got, want)
	}
	if resp := e.do(t, logical.ReadOperation, "environments/nowhere", nil); resp != nil {
		t.Errorf("reading a missing environment = %v, want nothing", resp.Data)
	}
}

func TestEnvironments_Validation(t *testing.T) {
	for name, tc := range map[string]struct {
		data    map[string]interface{}
		wantErr string
	}{
		"no token_url":       {data: map[string]interface{}{}, wantErr: "token_url is required"},
		"http remote":        {data: map[string]interface{}{"token_url": "http://id.aritma.io/connect/token"}, wantErr: "token_url must use https"},
		"bad auth_method":    {data: map[string]interface{}{"token_url": "https://x.example/t", "auth_method": "jwt_bearer"}, wantErr: `auth_method must be one of client_secret_post, client_secret_basic, private_key_jwt, tls_client_auth, self_signed_tls_client_auth, got "jwt_bearer"`},
		"bad ca_cert":        {data: map[string]interface{}{"token_url": "https://x.example/t", "ca_cert": "nope"}, wantErr: "ca_cert holds no PEM certificate"},
		"timeout too long":   {data: map[string]interface{}{"token_url": "https://x.example/t", "request_timeout": "1h"}, wantErr: "request_timeout must be between 1s and 5m0s"},
		"lifetime zero":      {data: map[string]interface{}{"token_url": "https://x.example/t", "assumed_token_lifetime": "0s"}, wantErr: "assumed_token_lifetime must be between 1s and 24h0m0s"},
		"unparseable number": {data: map[string]interface{}{"token_url": "https://x.example/t", "request_timeout": "fast"}, wantErr: "request_timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			resp := e.write(t, "environments/bank", tc.data)
			if resp == nil || !resp.IsError() {
				t.Fatalf("write succeeded; want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", resp.Error(), tc.wantErr)
			}
			if got := e.do(t, logical.ReadOperation, "environments/bank", nil); got != nil {
				t.Errorf("a refused write stored an environment: %v", got.Data)
			}
		})
	}
}

func TestEnvironments_DeleteInUseRefused(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "a", nil)
	e.setupRole(t, srv, "b", nil)
	resp := e.do(t, logical.DeleteOperation, "environments/fake", nil)
	if resp == nil || !resp.IsError() || resp.Error().Error() != `environment "fake" is used by roles a, b; point them at another environment or delete them first` {
		t.Fatalf("delete in use: %v", respError(resp))
	}
	e.do(t, logical.DeleteOperation, "roles/a", nil)
	e.do(t, logical.DeleteOperation, "roles/b", nil)
	if resp := e.do(t, logical.DeleteOperation, "environments/fake", nil); resp != nil && resp.IsError() {
		t.Fatalf("delete unused: %v", resp.Error())
	}
	if resp := e.do(t, logical.ReadOperation, "environments/fake", nil); resp != nil {
		t.Errorf("environment still there after delete")
	}
}

func TestEnvironments_DeleteDefaultRefused(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": "https://bank.example/token"})
	e.mustWrite(t, "config", map[string]interface{}{"default_environment": "bank"})
	resp := e.do(t, logical.DeleteOperation, "environments/bank", nil)
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "is the config's default_environment") {
		t.Fatalf("delete default environment: %v", respError(resp))
	}
}

// Changing an environment drops its roles' cached tokens, and only theirs.
func TestEnvironments_ChangeDropsItsRolesTokens(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "a", nil)
	e.mustWrite(t, "environments/other", map[string]interface{}{"token_url": srv.tokenURL()})
	e.mustWrite(t, "roles/b", map[string]interface{}{"environment": "other", "client_id": "b", "client_secret": "s"})
	a1, b1 := e.readToken(t, "a").Data["access_token"], e.readToken(t, "b").Data["access_token"]

	e.mustWrite(t, "environments/fake", map[string]interface{}{"auth_method": "client_secret_basic"})

	if a2 := e.readToken(t, "a").Data["access_token"]; a2 == a1 {
		t.Error("role a kept its token after its environment changed")
	}
	if b2 := e.readToken(t, "b").Data["access_token"]; b2 != b1 {
		t.Error("role b lost its token when another environment changed")
	}
	if auth := srv.request(srv.count() - 1).Authorization; !strings.HasPrefix(auth, "Basic ") {
		t.Errorf("the new grant did not use the new auth method: Authorization=%q", auth)
	}
}

// Item 8: http endpoints are allowed for loopback addresses only, and a
// proxy_url would carry their requests, client secret included, in clear
// to another host: a proxy is refused for every http endpoint.
func TestEnvironments_PlainHTTPNeverThroughAProxy(t *testing.T) {
	for name, tc := range map[string]struct {
		data    map[string]interface{}
		wantErr string
	}{
		"http token_url": {
			data:    map[string]interface{}{"token_url": "http://127.0.0.1:8080/connect/token", "proxy_url": "http://proxy.internal:3128"},
			wantErr: "proxy_url cannot be used with an http token_url (http://127.0.0.1:8080/connect/token)",
		},
		"http issuer": {
			data:    map[string]interface{}{"issuer": "http://localhost:8080", "proxy_url": "http://proxy.internal:3128"},
			wantErr: "proxy_url cannot be used with an http issuer (http://localhost:8080)",
		},
		"http revocation_url": {
			data: map[string]interface{}{"token_url": "https://bank.example/token", "revocation_url": "http://[::1]:8080/revoke",
				"proxy_url": "socks5://proxy.internal:1080"},
			wantErr: "proxy_url cannot be used with an http revocation_url (http://[::1]:8080/revoke)",
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			resp := e.write(t, "environments/bank", tc.data)
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", respError(resp), tc.wantErr)
			}
		})
	}
	// https endpoints go through the proxy.
	e := newTestEnv(t)
	e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": "https://bank.example/token", "proxy_url": "http://proxy.internal:3128"})
	// And a stored environment from before the rule never sends http through it.
	client, err := newHTTPClient(&environmentEntry{ProxyURL: "http://proxy.internal:3128"}, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/token", nil)
	if _, err := client.Transport.(*http.Transport).Proxy(req); err == nil || !strings.Contains(err.Error(), "only https goes through a proxy") {
		t.Errorf("an http request through the proxy: %v, want it refused", err)
	}
}
