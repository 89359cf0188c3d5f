package aritma

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

const testNextClientSecret = "n3xt-secret-4b8d21-do-not-leak"

// acceptOnly makes srv take only secret (client_secret_post), answering
// invalid_client to any other, as a bank does after a rotation.
func acceptOnly(srv *fakeAuthServer, secret string) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if r.PostForm.Get("client_secret") != secret {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "client authentication failed"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"access_token": fmt.Sprintf("opaque-access-token-%d", n), "expires_in": 3600, "token_type": "Bearer",
		})
	}
}

// secretsSent counts the requests srv saw with each client secret.
func secretsSent(srv *fakeAuthServer) map[string]int {
	sent := map[string]int{}
	for i := range srv.count() {
		sent[srv.request(i).Form.Get("client_secret")]++
	}
	return sent
}

// When the bank stops taking client_secret, the grant that meets
// invalid_client tries next_client_secret at once: the readers waiting on
// it never see the refusal, the role stores the switch and says so, and
// every later grant sends the new secret alone. Setting the next secret
// keeps the cached token.
func TestNextSecret_SwitchOnInvalidClientWithoutAFailedRead(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	acceptOnly(srv, testClientSecret)
	e.setupRole(t, srv, "r", nil)
	e.readToken(t, "r")
	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": testNextClientSecret})
	e.readToken(t, "r")
	if got := srv.count(); got != 1 {
		t.Fatalf("%d grants after setting next_client_secret, want 1: the cached token is as good as it was", got)
	}
	if role := e.do(t, logical.ReadOperation, "roles/r", nil).Data; role["next_client_secret_set"] != true || role["client_secret_switched_at"] != nil {
		t.Fatalf("role before the switch: %v", role)
	}

	acceptOnly(srv, testNextClientSecret) // the bank rotates
	e.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.request(logical.ReadOperation, "token/r", nil)
			switch {
			case err != nil:
				errs <- err
			case len(resp.Warnings) > 0:
				errs <- fmt.Errorf("warnings %v", resp.Warnings)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a reader saw the rotation: %v", err)
	}
	if sent := secretsSent(srv); sent[testClientSecret] != 2 || sent[testNextClientSecret] != 1 {
		t.Errorf("secrets sent: %d with the old, %d with the new; want 2 and 1 (one grant for 20 readers)",
			sent[testClientSecret], sent[testNextClientSecret])
	}

	role := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	if role["next_client_secret_set"] != false || role["client_secret_switched_at"] == nil ||
		role["client_secret_switch_reason"] != switchRefused {
		t.Errorf("role after the switch: %v", role)
	}
	stored, err := getRole(t.Context(), e.storage, "r")
	if err != nil || stored.ClientSecret != testNextClientSecret || stored.NextClientSecret != "" {
		t.Fatalf("stored role after the switch: the new secret is not client_secret (err %v)", err)
	}
	if st := e.roleStatus(t, "r"); st["secret_switches"] != int64(1) || st["client_secret_switched_at"] == nil {
		t.Errorf("status after the switch: %v", st)
	}
	if !strings.Contains(e.logs.String(), "client secret switched") {
		t.Errorf("the switch is not in the log:\n%s", e.logs.String())
	}

	// The switched source and the rebuilt one send the new secret alone.
	e.clock.Advance(time.Hour)
	e.readToken(t, "r")
	e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": "bankservice"})
	e.readToken(t, "r")
	if sent := secretsSent(srv); sent[testClientSecret] != 2 || sent[testNextClientSecret] != 3 {
		t.Errorf("after the switch: %d requests with the old secret, %d with the new; want 2 and 3", sent[testClientSecret], sent[testNextClientSecret])
	}
	assertNoSecretIn(t, e, testClientSecret, testNextClientSecret)
}

// A per-lease role's concurrent grants each switch; the switch is stored
// once and no read fails.
func TestNextSecret_PerLeaseReadersSwitchTogether(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	acceptOnly(srv, testNextClientSecret)
	e.setupRole(t, srv, "r", map[string]interface{}{"token_per_lease": true, "next_client_secret": testNextClientSecret})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.request(logical.ReadOperation, "token/r", nil); err != nil {
				t.Errorf("a per-lease read failed: %v", err)
			}
		}()
	}
	wg.Wait()
	stored, _ := getRole(t.Context(), e.storage, "r")
	if stored.ClientSecret != testNextClientSecret || stored.SecretSwitch == nil {
		t.Errorf("the switch is not stored: switch %v", stored.SecretSwitch)
	}
	if n := strings.Count(e.logs.String(), "client secret switched"); n < 1 {
		t.Errorf("%d switches logged", n)
	}
}

// Both secrets refused: the read fails with both answers; other failures
// never try the next secret.
func TestNextSecret_TriedOnlyOnInvalidClient(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	acceptOnly(srv, "neither-of-them")
	e.setupRole(t, srv, "r", map[string]interface{}{"next_client_secret": testNextClientSecret})
	_, err := e.request(logical.ReadOperation, "token/r", nil)
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "next_client_secret was tried too") {
		t.Fatalf("both refused: %v, want invalid_client and the next secret's failure", err)
	}
	if stored, _ := getRole(t.Context(), e.storage, "r"); stored.ClientSecret != testClientSecret || stored.NextClientSecret != testNextClientSecret {
		t.Errorf("a refused next secret replaced client_secret")
	}

	for name, respond := range map[string]func(http.ResponseWriter, *http.Request, int){
		"invalid_scope": func(w http.ResponseWriter, _ *http.Request, _ int) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope"})
		},
		"503": func(w http.ResponseWriter, _ *http.Request, _ int) { w.WriteHeader(http.StatusServiceUnavailable) },
	} {
		e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": name}) // a new source, no pause
		before := secretsSent(srv)[testNextClientSecret]
		srv.mu.Lock()
		srv.respond = respond
		srv.mu.Unlock()
		if _, err := e.request(logical.ReadOperation, "token/r", nil); err == nil {
			t.Fatalf("%s: the read succeeded", name)
		}
		if got := secretsSent(srv)[testNextClientSecret]; got != before {
			t.Errorf("%s: the next secret was sent", name)
		}
	}
}

// Promote and drop: the operator's own switch, and the checks on the field.
func TestNextSecret_PromoteDropAndChecks(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	resp, _ := e.request(logical.UpdateOperation, "roles/r/next-secret/promote", nil)
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "no next_client_secret") {
		t.Errorf("promote without a next secret: %v", respError(resp))
	}
	for name, tc := range map[string]struct {
		data map[string]interface{}
		want string
	}{
		"same as current": {map[string]interface{}{"next_client_secret": testClientSecret}, "next_client_secret is the same as client_secret"},
		"too long":        {map[string]interface{}{"next_client_secret": strings.Repeat("x", 4097)}, "next_client_secret is longer than 4096 bytes"},
		"private_key_jwt": {map[string]interface{}{"next_client_secret": testNextClientSecret, "auth_method": "private_key_jwt"},
			"next_client_secret is for client_secret_post and client_secret_basic; this role uses private_key_jwt"},
	} {
		resp := e.write(t, "roles/r", tc.data)
		if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, respError(resp), tc.want)
		}
	}

	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": testNextClientSecret})
	e.do(t, logical.DeleteOperation, "roles/r/next-secret", nil)
	if role := e.do(t, logical.ReadOperation, "roles/r", nil).Data; role["next_client_secret_set"] != false {
		t.Errorf("after drop: %v", role)
	}
	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": testNextClientSecret})
	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": ""})
	if role := e.do(t, logical.ReadOperation, "roles/r", nil).Data; role["next_client_secret_set"] != false {
		t.Errorf("after writing an empty next secret: %v", role)
	}

	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": testNextClientSecret})
	if resp, err := e.request(logical.UpdateOperation, "roles/r/next-secret/promote", nil); err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("promote: %v %v", err, respError(resp))
	}
	role := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	if role["next_client_secret_set"] != false || role["client_secret_switch_reason"] != switchPromoted {
		t.Errorf("after promote: %v", role)
	}
	e.readToken(t, "r")
	if got := srv.request(srv.count() - 1).Form.Get("client_secret"); got != testNextClientSecret {
		t.Errorf("after promote the grant sent another secret")
	}

	// Writing the next secret as client_secret promotes it too.
	e.mustWrite(t, "roles/r", map[string]interface{}{"next_client_secret": "third-secret-0c1d"})
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_secret": "third-secret-0c1d"})
	if role := e.do(t, logical.ReadOperation, "roles/r", nil).Data; role["next_client_secret_set"] != false {
		t.Errorf("client_secret written with the next secret's value left it as next: %v", role)
	}
	assertNoSecretIn(t, e, testClientSecret, testNextClientSecret)
}

// assertNoSecretIn checks that the role's read, status and list, and the
// log, show none of secrets in any form.
func assertNoSecretIn(t *testing.T, e *testEnv, secrets ...string) {
	t.Helper()
	var outputs []string
	for _, req := range []struct {
		op   logical.Operation
		path string
	}{{logical.ReadOperation, "roles/r"}, {logical.ReadOperation, "roles/r/status"}, {logical.ListOperation, "roles/"}} {
		resp, err := e.request(req.op, req.path, nil)
		raw, _ := json.Marshal(resp)
		outputs = append(outputs, string(raw), fmt.Sprint(err))
	}
	outputs = append(outputs, e.logs.String())
	for _, secret := range secrets {
		for _, form := range testservers.SecretForms(secret) {
			for _, out := range outputs {
				if strings.Contains(out, form) {
					t.Errorf("a client secret appears in a response or the log")
				}
			}
		}
	}
}

// Many readers meet a slow bank that refuses both secrets, and the clock
// moves during every request: the readers share one grant (one request per
// secret), each gets the refusal with both answers, and the pause keeps the
// next readers from the bank. When the bank then takes the next secret, the
// lease of the token from the second request still ends before the token,
// though the clock moved during both.
func TestNextSecret_ManyReadersAtASlowRefusingBankWithAMovingClock(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	slowAcceptOnly := func(secret string) {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
			time.Sleep(20 * time.Millisecond)
			e.clock.Advance(3 * time.Second)
			if r.PostForm.Get("client_secret") != secret {
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
				return
			}
			writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": fmt.Sprintf("opaque-%d", n), "expires_in": 60, "token_type": "Bearer"})
		}
	}
	slowAcceptOnly("neither-of-them")
	e.setupRole(t, srv, "r", map[string]interface{}{"next_client_secret": testNextClientSecret})

	read := func(readers int) []error {
		errs := make([]error, readers)
		var wg sync.WaitGroup
		for i := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.request(logical.ReadOperation, "token/r", nil)
			}()
		}
		wg.Wait()
		return errs
	}
	for i, err := range read(20) {
		if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "next_client_secret was tried too") {
			t.Fatalf("reader %d: %v, want the refusal of both secrets", i, err)
		}
	}
	if got := srv.count(); got != 2 {
		t.Fatalf("the bank saw %d requests for 20 readers, want 2 (one per secret)", got)
	}
	read(20) // during the pause
	if got := srv.count(); got != 2 {
		t.Errorf("the bank saw %d requests during the pause, want none after the first 2", got-2)
	}

	e.clock.Advance(time.Minute) // past the pause
	slowAcceptOnly(testNextClientSecret)
	resp := e.readToken(t, "r")
	src, _ := e.b.cachedSource("r")
	if left := src.current.Load().expiresAt.Sub(e.clock.Now()); resp.Secret.TTL <= 0 || resp.Secret.TTL > left {
		t.Errorf("lease %s for a token with %s left", resp.Secret.TTL, left)
	}
	if got := srv.count(); got != 4 {
		t.Errorf("the switch took %d requests, want 2", got-2)
	}
}
