package aritma

import (
	"testing"

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
