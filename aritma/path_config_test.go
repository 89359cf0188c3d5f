package aritma

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfig_UnsetReadsDefaults(t *testing.T) {
	e := newTestEnv(t)
	got := e.do(t, logical.ReadOperation, "config", nil).Data
	want := map[string]interface{}{"default_environment": "production", "default_min_remaining": int64(60), "request_timeout": int64(10), "metrics_role_limit": 1000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config = %v, want %v", got, want)
	}
}

func TestConfig_WriteReadDelete(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "config", map[string]interface{}{"default_environment": "development", "default_min_remaining": "10m"})
	e.mustWrite(t, "config", map[string]interface{}{"request_timeout": "20s"}) // partial update keeps the rest
	got := e.do(t, logical.ReadOperation, "config", nil).Data
	want := map[string]interface{}{"default_environment": "development", "default_min_remaining": int64(600), "request_timeout": int64(20), "metrics_role_limit": 1000}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config = %v, want %v", got, want)
	}

	// New roles take the defaults.
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_id": "c", "client_secret": "s"})
	role := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	if role["environment"] != "development" || role["min_remaining"] != int64(600) {
		t.Errorf("new role = %v, want the config's defaults", role)
	}

	e.do(t, logical.DeleteOperation, "config", nil)
	if got := e.do(t, logical.ReadOperation, "config", nil).Data["default_environment"]; got != "production" {
		t.Errorf("after delete default_environment = %v, want production", got)
	}
	// Existing roles keep what they were created with.
	if got := e.do(t, logical.ReadOperation, "roles/r", nil).Data["environment"]; got != "development" {
		t.Errorf("role environment = %v after config reset, want development", got)
	}
}

func TestConfig_Validation(t *testing.T) {
	for name, tc := range map[string]struct {
		data    map[string]interface{}
		wantErr string
	}{
		"unknown environment":  {data: map[string]interface{}{"default_environment": "staging"}, wantErr: `default_environment: environment "staging" does not exist`},
		"min_remaining 25h":    {data: map[string]interface{}{"default_min_remaining": "25h"}, wantErr: "default_min_remaining must be between 0s and 24h0m0s"},
		"timeout 0":            {data: map[string]interface{}{"request_timeout": "0s"}, wantErr: "request_timeout must be between 1s and 5m0s"},
		"timeout not duration": {data: map[string]interface{}{"request_timeout": "forever"}, wantErr: "request_timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			resp := e.write(t, "config", tc.data)
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Fatalf("write = %v, want an error containing %q", respError(resp), tc.wantErr)
			}
			if entry, _ := e.storage.Get(t.Context(), "config"); entry != nil {
				t.Errorf("a refused write stored config: %s", entry.Value)
			}
		})
	}
}

func TestConfig_ChangeDropsCachedTokens(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	first := e.readToken(t, "r").Data["access_token"]
	e.mustWrite(t, "config", map[string]interface{}{"request_timeout": "5s"})
	if e.readToken(t, "r").Data["access_token"] == first {
		t.Error("a config change kept the cached token")
	}
}
