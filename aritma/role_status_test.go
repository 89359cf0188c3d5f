package aritma

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func (e *testEnv) roleStatus(t *testing.T, role string) map[string]interface{} {
	t.Helper()
	resp := e.do(t, logical.ReadOperation, "roles/"+role+"/status", nil)
	if resp == nil || resp.IsError() {
		t.Fatalf("status of %s: %v", role, respError(resp))
	}
	return resp.Data
}

// Grants, cache hits and each class of failure are counted, the last error
// carries the server's status, error and error_description, and the pause
// and the token's expiry are shown; no token or secret is.
func TestRoleStatus_CountsEveryOutcome(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	token := e.readToken(t, "r").Data["access_token"].(string)
	e.readToken(t, "r")
	e.readToken(t, "r")
	st := e.roleStatus(t, "r")
	if st["grants"] != int64(1) || st["cache_hits"] != int64(2) || st["token_expires_at"] == nil || st["last_grant_latency_ms"] == nil {
		t.Errorf("after one grant and two hits: %v", st)
	}

	// A refusal, then a server failure, each after the token is too old.
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "unknown client"})
	}
	e.clock.Advance(time.Hour)
	if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil {
		t.Fatal("the refused grant succeeded")
	}
	st = e.roleStatus(t, "r")
	last := st["last_error"].(map[string]interface{})
	if last["class"] != failRefused || last["status"] != 401 || last["error"] != "invalid_client" || last["error_description"] != "unknown client" {
		t.Errorf("last_error after a refusal: %v", last)
	}
	pause := st["pause"].(map[string]interface{})
	if pause["failures_in_a_row"] != 1 || pause["paused"] != true {
		t.Errorf("pause after a failure: %v", pause)
	}
	e.clock.Advance(time.Minute) // past the pause
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) { w.WriteHeader(http.StatusServiceUnavailable) }
	_, _ = e.request(logical.ReadOperation, "token/r", nil)

	// No answer at all: the network.
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "http://" + dead.Addr().String() + "/token"
	dead.Close()
	e.mustWrite(t, "environments/dead", map[string]interface{}{"token_url": deadURL})
	e.mustWrite(t, "roles/d", map[string]interface{}{"environment": "dead", "client_id": "c", "client_secret": testClientSecret})
	_, _ = e.request(logical.ReadOperation, "token/d", nil)

	failures := e.roleStatus(t, "r")["failures"].(map[string]interface{})
	if failures[failRefused] != int64(1) || failures[failServer] != int64(1) {
		t.Errorf("failures of r: %v, want one refused and one server", failures)
	}
	if got := e.roleStatus(t, "d")["failures"].(map[string]interface{})[failNetwork]; got != int64(1) {
		t.Errorf("network failures of d: %v", got)
	}
	list := e.do(t, logical.ListOperation, "roles/", nil)
	if info := list.Data["key_info"].(map[string]interface{}); info["r"] == nil || info["d"] == nil {
		t.Errorf("list -detailed: %v", list.Data)
	}
	raw, _ := json.Marshal([]interface{}{e.roleStatus(t, "r"), list.Data})
	for _, secret := range []string{token, testClientSecret} {
		if strings.Contains(string(raw), secret) {
			t.Error("the status or list shows a token or a secret")
		}
	}
}

// A timeout is its own class.
func TestRoleStatus_Timeout(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) { <-release }
	e.mustWrite(t, "environments/slow", map[string]interface{}{"token_url": srv.tokenURL(), "request_timeout": 1})
	e.mustWrite(t, "roles/s", map[string]interface{}{"environment": "slow", "client_id": "c", "client_secret": testClientSecret})
	if _, err := e.request(logical.ReadOperation, "token/s", nil); err == nil {
		t.Fatal("the slow grant succeeded")
	}
	if got := e.roleStatus(t, "s")["failures"].(map[string]interface{})[failTimeout]; got != int64(1) {
		t.Errorf("timeouts: %v", got)
	}
}

// A private_key_jwt role's status names its current and next key.
func TestRoleStatus_Keys(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "roles/k", map[string]interface{}{"client_id": "c", "auth_method": "private_key_jwt"})
	first := e.roleStatus(t, "k")["current_key"]
	next := e.do(t, logical.UpdateOperation, "roles/k/keys/rotate", nil).Data["kid"]
	st := e.roleStatus(t, "k")
	if first == nil || st["current_key"] != first || st["next_key"] != next || st["next_key_activates_at"] == nil {
		t.Errorf("keys in the status: %v (first %v, rotated %v)", st, first, next)
	}
}

// The log lines an operator greps for: a grant at info with its attempts,
// a failure at warn with its class, attempts and pause, and the grant that
// ends a pause saying how many failed before it.
func TestRoleStatus_LogLinesForGrantsFailuresAndPauses(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		switch n {
		case 1, 2: // retried
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3, 5:
			writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "opaque-" + r.PostForm.Get("scope"), "expires_in": 3600, "token_type": "Bearer"})
		default:
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope"})
		}
	}
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	e.clock.Advance(time.Hour)
	if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil {
		t.Fatal("the refused grant succeeded")
	}
	e.clock.Advance(time.Minute) // past the pause
	e.readToken(t, "r")

	var lines []string
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "token issued") || strings.Contains(line, "token request failed") {
			lines = append(lines, line)
		}
	}
	want := []string{
		"[INFO]  token issued: role=r environment=fake outcome=granted latency=0s attempts=3",
		"[WARN]  token request failed: role=r environment=fake outcome=refused latency=0s attempts=1 failures_in_a_row=1",
		"[INFO]  token issued: role=r environment=fake outcome=granted latency=0s attempts=1 lifetime=1h0m0s pause_ended_after_failures=1",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d grant log lines, want %d:\n%s", len(lines), len(want), e.logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("log line %d:\n got %s\nwant it to contain %s", i, lines[i], w)
		}
	}
}
