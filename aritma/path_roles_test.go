package aritma

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestRoles_CreateReadListDelete(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "roles/payments", map[string]interface{}{
		"environment":   "development",
		"client_id":     "my-client",
		"client_secret": testClientSecret,
		"scopes":        "bankservice",
	})

	resp := e.do(t, logical.ReadOperation, "roles/payments", nil)
	want := map[string]interface{}{
		"environment":            "development",
		"client_id":              "my-client",
		"client_secret_set":      true,
		"next_client_secret_set": false,
		"scopes":                 []string{"bankservice"},
		"audience":               "",
		"resource":               []string{},
		"token_params":           map[string]string{},
		"min_remaining":          int64(60),
		"auth_method":            "",
		"signing_algorithm":      "",
		"token_per_lease":        false,
		"tls_client_cert":        "",
		"tls_client_key_set":     false,
		"key_activation_delay":   int64(86400),
		"allowed_grant_types":    []string{"client_credentials"},
		"redirect_uris":          []string{},
		"consent_scopes":         []string{},
		"authorization_params":   map[string]string{},
		"pkce":                   true,
		"keep_password":          false,
		"refresh_keep_alive":     int64(0),
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Errorf("read = %#v\nwant %#v", resp.Data, want)
	}

	e.mustWrite(t, "roles/identity", map[string]interface{}{"client_id": "id", "client_secret": "x", "scopes": "IDENTITY"})
	list := e.do(t, logical.ListOperation, "roles/", nil)
	if got := list.Data["keys"]; !reflect.DeepEqual(got, []string{"identity", "payments"}) {
		t.Errorf("list = %v, want [identity payments]", got)
	}
	// A role written without an environment gets the config's default.
	if got := e.do(t, logical.ReadOperation, "roles/identity", nil).Data["environment"]; got != "production" {
		t.Errorf("default environment = %v, want production", got)
	}

	e.do(t, logical.DeleteOperation, "roles/payments", nil)
	if resp := e.do(t, logical.ReadOperation, "roles/payments", nil); resp != nil {
		t.Errorf("read after delete = %v, want nothing", resp.Data)
	}
}

// Updates change only the fields given; the secret survives an update that
// does not mention it.
func TestRoles_PartialUpdate(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", map[string]interface{}{"audience": "aud", "min_remaining": "5m"})
	e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": "api bankservice"})

	got := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	if !reflect.DeepEqual(got["scopes"], []string{"api", "bankservice"}) || got["audience"] != "aud" ||
		got["min_remaining"] != int64(300) || got["client_id"] != "client-r" {
		t.Errorf("after partial update: %v", got)
	}
	e.readToken(t, "r")
	if form := srv.request(0).Form; form.Get("client_secret") != testClientSecret {
		t.Error("the client secret did not survive an update that did not mention it")
	}
}

func TestRoles_Validation(t *testing.T) {
	valid := func() map[string]interface{} {
		return map[string]interface{}{"environment": "development", "client_id": "c", "client_secret": "s"}
	}
	for name, tc := range map[string]struct {
		change  map[string]interface{}
		drop    string
		wantErr string
	}{
		"unknown environment":      {change: map[string]interface{}{"environment": "staging"}, wantErr: `environment: "staging" does not exist`},
		"empty client_id":          {change: map[string]interface{}{"client_id": ""}, wantErr: "client_id is required"},
		"missing client_id":        {drop: "client_id", wantErr: "client_id is required"},
		"missing client_secret":    {drop: "client_secret", wantErr: "client_secret is required"},
		"bad scope":                {change: map[string]interface{}{"scopes": `api,"quoted"`}, wantErr: `scopes: "\"quoted\"" is not a valid scope`},
		"negative min_remaining":   {change: map[string]interface{}{"min_remaining": "-1m"}, wantErr: "min_remaining"},
		"huge min_remaining":       {change: map[string]interface{}{"min_remaining": "48h"}, wantErr: "min_remaining must be between 0s and 24h0m0s"},
		"unparseable duration":     {change: map[string]interface{}{"min_remaining": "soon"}, wantErr: "min_remaining"},
		"reserved token param":     {change: map[string]interface{}{"token_params": map[string]interface{}{"grant_type": "password"}}, wantErr: `token_params may not set "grant_type"`},
		"relative resource":        {change: map[string]interface{}{"resource": "banking"}, wantErr: `resource: "banking" is not an absolute URI`},
		"control char in clientid": {change: map[string]interface{}{"client_id": "a\tb"}, wantErr: "client_id must not contain control characters"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			data := valid()
			for k, v := range tc.change {
				data[k] = v
			}
			delete(data, tc.drop)
			resp := e.write(t, "roles/r", data)
			if resp == nil || !resp.IsError() {
				t.Fatalf("write succeeded; want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", resp.Error(), tc.wantErr)
			}
			// Nothing is stored by a refused write.
			if got := e.do(t, logical.ReadOperation, "roles/r", nil); got != nil {
				t.Errorf("a refused write stored a role: %v", got.Data)
			}
		})
	}
}

// A refused update leaves the stored role as it was.
func TestRoles_RefusedUpdateKeepsRole(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_id": "c", "client_secret": "s", "scopes": "api"})
	before := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	resp := e.write(t, "roles/r", map[string]interface{}{"scopes": "api", "environment": "nowhere"})
	if resp == nil || !resp.IsError() {
		t.Fatal("update to a missing environment succeeded")
	}
	if after := e.do(t, logical.ReadOperation, "roles/r", nil).Data; !reflect.DeepEqual(before, after) {
		t.Errorf("refused update changed the role: %v -> %v", before, after)
	}
}

// Changing credentials (or anything else) drops the cached token.
func TestRoles_ChangeDropsCachedToken(t *testing.T) {
	for name, change := range map[string]map[string]interface{}{
		"client_secret": {"client_secret": "rotated"},
		"client_id":     {"client_id": "other"},
		"scopes":        {"scopes": "bankservice"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			e.setupRole(t, srv, "r", nil)
			first := e.readToken(t, "r").Data["access_token"]
			e.mustWrite(t, "roles/r", change)
			if second := e.readToken(t, "r").Data["access_token"]; second == first {
				t.Errorf("after changing %s the old token was handed out", name)
			}
			last := srv.request(srv.count() - 1).Form
			for k, v := range change {
				field := k
				if k == "scopes" {
					field = "scope"
				}
				if last.Get(field) != v {
					t.Errorf("the new grant sent %s=%q, want %q", field, last.Get(field), v)
				}
			}
		})
	}
}

// signing_algorithm reads back as written, and an empty one restores the
// default, so that a declarative config that drops it sees no drift.
func TestRoles_SigningAlgorithmReadsBack(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "roles/r", map[string]interface{}{
		"environment": "development", "client_id": "c", "auth_method": "private_key_jwt", "signing_algorithm": "ES256",
	})
	if got := e.do(t, logical.ReadOperation, "roles/r", nil).Data["signing_algorithm"]; got != "ES256" {
		t.Errorf("signing_algorithm reads %v, want ES256", got)
	}
	e.mustWrite(t, "roles/r", map[string]interface{}{"signing_algorithm": ""})
	if got := e.do(t, logical.ReadOperation, "roles/r", nil).Data["signing_algorithm"]; got != "" {
		t.Errorf("after writing an empty signing_algorithm it reads %v, want empty (RS256)", got)
	}
}
