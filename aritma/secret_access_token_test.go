package aritma

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Revoking one reader's lease leaves the shared token to the others: the
// next reader still gets it without a new grant.
func TestAccessTokenLease_RevokeLeavesSharedToken(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	first := e.readToken(t, "r")

	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RevokeOperation,
		Storage:   e.storage,
		Secret:    first.Secret,
	})
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("revoke: %v %v", err, respError(resp))
	}
	if second := e.readToken(t, "r"); second.Data["access_token"] != first.Data["access_token"] {
		t.Error("revoking a lease replaced the shared token")
	}
	if srv.count() != 1 {
		t.Errorf("server saw %d requests, want 1 (no revocation, no new grant)", srv.count())
	}
}

// Leases cannot be renewed: the token's lifetime is fixed by the bank.
func TestAccessTokenLease_NotRenewable(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	lease := e.readToken(t, "r").Secret
	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{
		Operation: logical.RenewOperation,
		Storage:   e.storage,
		Secret:    lease,
	})
	if err == nil && (resp == nil || !resp.IsError()) {
		t.Errorf("renew succeeded; want it refused")
	}
}

// perLeaseServer adds a revocation endpoint to a fake authorization server,
// recording what was revoked and with which credentials.
func perLeaseEnv(t *testing.T) (*testEnv, *fakeAuthServer, *[]recordedRequest) {
	t.Helper()
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	var revoked []recordedRequest
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/connect/revocation" {
			revoked = append(revoked, recordedRequest{Form: r.PostForm, Authorization: r.Header.Get("Authorization")})
			w.WriteHeader(http.StatusOK)
			return
		}
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": fmt.Sprintf("lease-token-%d", n), "expires_in": 600, "token_type": "Bearer"})
	}
	e.mustWrite(t, "environments/fake", map[string]interface{}{
		"token_url": srv.tokenURL(), "revocation_url": srv.URL + "/connect/revocation", "auth_method": "client_secret_basic",
	})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "fake", "client_id": "c", "client_secret": testClientSecret, "token_per_lease": true})
	return e, srv, &revoked
}

func revokeLease(t *testing.T, e *testEnv, lease *logical.Secret) {
	t.Helper()
	resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: lease})
	if err != nil || (resp != nil && resp.IsError()) {
		t.Fatalf("revoke: %v %v", err, respError(resp))
	}
}

// A per-lease role gives every read its own token, and revoking a lease
// revokes exactly its token at the server, authenticated as the client.
func TestPerLeaseTokens_RevokedWithTheirLease(t *testing.T) {
	e, srv, revoked := perLeaseEnv(t)
	first, second := e.readToken(t, "r"), e.readToken(t, "r")
	if first.Data["access_token"] == second.Data["access_token"] {
		t.Fatal("two reads of a per-lease role shared a token")
	}
	if second.Secret.TTL != 10*time.Minute-time.Second {
		t.Errorf("lease = %s, want the token's 10m, less issueRounding", second.Secret.TTL)
	}
	if _, ok := first.Secret.InternalData["access_token"]; !ok {
		t.Fatal("the lease does not keep its token for revocation")
	}

	revokeLease(t, e, first.Secret)
	if len(*revoked) != 1 {
		t.Fatalf("revocations = %d, want 1", len(*revoked))
	}
	got := (*revoked)[0]
	if got.Form.Get("token") != first.Data["access_token"] || got.Form.Get("token_type_hint") != "access_token" {
		t.Errorf("revoked %v, want the first lease's token", got.Form)
	}
	if !strings.HasPrefix(got.Authorization, "Basic ") {
		t.Errorf("revocation not authenticated with client_secret_basic: %q", got.Authorization)
	}
	if srv.count() != 3 {
		t.Errorf("server requests = %d, want 2 grants and 1 revocation", srv.count())
	}
}

// Leases of expired tokens, of deleted roles and of roles now using another
// client revoke nothing at the server, and do not fail.
func TestPerLeaseTokens_RevocationSkipped(t *testing.T) {
	for name, change := range map[string]func(e *testEnv){
		"expired":      func(e *testEnv) { e.clock.Advance(11 * time.Minute) },
		"role deleted": func(e *testEnv) { e.request(logical.DeleteOperation, "roles/r", nil) },
		"other client": func(e *testEnv) { e.mustWrite(t, "roles/r", map[string]interface{}{"client_id": "other"}) },
	} {
		t.Run(name, func(t *testing.T) {
			e, _, revoked := perLeaseEnv(t)
			lease := e.readToken(t, "r").Secret
			change(e)
			revokeLease(t, e, lease)
			if len(*revoked) != 0 {
				t.Errorf("revoked %d tokens, want none", len(*revoked))
			}
		})
	}
}

// A failed revocation is an error, so that Vault retries it.
func TestPerLeaseTokens_FailedRevocationIsAnError(t *testing.T) {
	e, srv, _ := perLeaseEnv(t)
	lease := e.readToken(t, "r").Secret
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
	}
	_, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: lease})
	if err == nil || !strings.Contains(err.Error(), "revocation request to "+srv.URL+"/connect/revocation failed: 503 Service Unavailable: temporarily_unavailable") {
		t.Errorf("error = %v", err)
	}
}
