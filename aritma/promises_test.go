package aritma

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// The engine's two promises at their edges: a lease never outlives its
// token, and readers cannot spend the bank's grants. Side effects happen
// once on a cluster.

// steppingClock makes the backend's clock move on every reading, as a real
// clock does between two reads in one request.
func steppingClock(c *testClock, step time.Duration) func() time.Time {
	return func() time.Time {
		now := c.Now()
		c.Advance(step)
		return now
	}
}

// codeOf is the HTTP status an error carries to Vault's client.
func codeOf(err error) int {
	var coded logical.HTTPCodedError
	if errors.As(err, &coded) {
		return coded.Code()
	}
	return 0
}

// Item 1: a token with just over a second left, read on a clock that moves
// between readings, still goes out with a lease of at least a second: Vault
// would take a TTL of 0 for the mount's default (768h). Here the server
// fails, and the cached token serves while it has a second left.
func TestTokenRead_LeaseNeverUnderASecondOnAMovingClock(t *testing.T) {
	for offset := time.Duration(0); offset < 500*time.Millisecond; offset += 25 * time.Millisecond {
		t.Run(fmt.Sprintf("offset %s", offset), func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			srv.expiresIn = 60
			e.setupRole(t, srv, "r", map[string]interface{}{"min_remaining": "0s"})
			e.b.now = steppingClock(e.clock, 100*time.Millisecond)
			e.readToken(t, "r")
			srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			}
			e.clock.Advance(56*time.Second + offset) // about two seconds left
			served := 0
			for i := 0; i < 20; i++ {
				resp, err := e.request(logical.ReadOperation, "token/r", nil)
				if err != nil {
					continue // no token left to serve: an error is right
				}
				served++
				if resp.Secret.TTL < time.Second {
					t.Errorf("read %d: lease %s, want at least 1s", i, resp.Secret.TTL)
				}
			}
			if served == 0 {
				t.Error("the cached token never served; the test missed its edge")
			}
		})
	}
}

// Item 2: Vault starts a lease when the answer reaches it, so a new token's
// lease is what it has left then, not its whole expires_in: a grant that
// took 3 seconds gives a lease 3 seconds shorter.
func TestTokenRead_NewTokenLeaseCountsFromTheAnswer(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		e.clock.Advance(3 * time.Second) // the token is signed, then the answer is held back
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"access_token": fmt.Sprintf("slow-token-%d", n), "expires_in": 3600, "token_type": "Bearer",
		})
	}
	e.setupRole(t, srv, "r", nil)
	sent := e.clock.Now()
	resp := e.readToken(t, "r")
	// The hour counts from a second before the request (issueRounding).
	if want := time.Hour - time.Second - 3*time.Second; resp.Secret.TTL != want {
		t.Errorf("lease = %s, want %s: the hour counts from the request", resp.Secret.TTL, want)
	}
	if want := sent.Add(time.Hour - time.Second).UTC().Format(time.RFC3339); resp.Data["expires_at"] != want {
		t.Errorf("expires_at = %v, want %s", resp.Data["expires_at"], want)
	}
}

// Item 3: a min_remaining on the read that the server's tokens cannot meet
// costs one grant (to learn what they live), then 400 with no grant; a role
// change, or a longer-lived token, updates what is known.
func TestTokenRead_ImpossibleMinRemainingCostsOneGrant(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	for i := 0; i < 10; i++ {
		_, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "2h"})
		if codeOf(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "less than the 2h0m0s asked for with min_remaining") {
			t.Fatalf("read %d with min_remaining=2h: error %v (status %d), want 400 naming min_remaining", i, err, codeOf(err))
		}
	}
	if srv.count() != 1 {
		t.Errorf("10 reads with an impossible min_remaining cost %d grants, want 1", srv.count())
	}
	// The one token is shared with ordinary readers.
	e.readToken(t, "r")
	if srv.count() != 1 {
		t.Errorf("an ordinary read after them made a grant: %d", srv.count())
	}

	// The server starts issuing 3h tokens: the next new token teaches it.
	srv.expiresIn = 3 * 3600
	e.clock.Advance(50 * time.Minute)
	e.readToken(t, "r")
	if resp := e.do(t, logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "2h"}); resp.Secret.TTL != 3*time.Hour-time.Second {
		t.Errorf("with 3h tokens, min_remaining=2h got a %s lease, want the 3h token", resp.Secret.TTL)
	}

	// A role change forgets: the first read learns again, with one grant.
	srv.expiresIn = 3600
	e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": "bankservice"})
	before := srv.count()
	for i := 0; i < 3; i++ {
		if _, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "2h"}); codeOf(err) != http.StatusBadRequest {
			t.Errorf("after the role change, read %d: %v, want 400", i, err)
		}
	}
	if got := srv.count() - before; got != 1 {
		t.Errorf("after the role change 3 impossible reads cost %d grants, want 1", got)
	}
}

// Item 3, per-lease roles: a token issued for a read that cannot take it is
// revoked at once; nobody else would ever revoke it.
func TestTokenRead_PerLeaseTokenNotHandedOutIsRevoked(t *testing.T) {
	e, srv, revoked := perLeaseEnv(t)
	_, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "1h"})
	if codeOf(err) != http.StatusBadRequest {
		t.Fatalf("min_remaining=1h on 10m tokens: %v, want 400", err)
	}
	if len(*revoked) != 1 || !strings.HasPrefix((*revoked)[0].Form.Get("token"), "lease-token-") {
		t.Fatalf("revocations = %+v, want the unused token revoked", *revoked)
	}
	if _, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "1h"}); codeOf(err) != http.StatusBadRequest {
		t.Errorf("second read: %v, want 400", err)
	}
	if srv.count() != 2 {
		t.Errorf("server saw %d requests, want 1 grant and 1 revocation", srv.count())
	}
}

// Item 4: without expires_in, a JWT's lifetime is exp - iat, counted from
// when the request was sent: the bank's clock, 10 minutes ahead here, does
// not stretch the lease. exp <= iat is refused.
func TestTokenRead_JWTLifetimeNotTheBanksClock(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	bankNow := e.clock.Now().Add(10 * time.Minute)
	claims := fmt.Sprintf(`{"iat":%d,"exp":%d}`, bankNow.Unix(), bankNow.Add(15*time.Minute).Unix())
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": testJWT(claims), "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)
	if resp := e.readToken(t, "r"); resp.Secret.TTL != 15*time.Minute-time.Second {
		t.Errorf("lease = %s, want the token's 15m lifetime (exp - iat), not exp - Vault's clock", resp.Secret.TTL)
	}

	claims = fmt.Sprintf(`{"iat":%d,"exp":%d}`, bankNow.Unix(), bankNow.Unix())
	e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": "bankservice"})
	_, err := e.request(logical.ReadOperation, "token/r", nil)
	if codeOf(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "is not after its iat claim") {
		t.Errorf("exp = iat: error %v (status %d), want 502 naming exp and iat", err, codeOf(err))
	}
}

// jwtClaims reads a JWT's payload without checking it.
func jwtClaims(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]interface{}{}
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// Item 7: the private_key_jwt assertion sent to the revocation endpoint has
// the token requests' aud (the token endpoint), and a 204 is success.
func TestRevocation_TokenEndpointAudienceAndAny2xx(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	var revocations []recordedRequest
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path == "/connect/revocation" {
			revocations = append(revocations, recordedRequest{Form: r.PostForm})
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": fmt.Sprintf("t-%d", n), "expires_in": 600, "token_type": "Bearer"})
	}
	e.mustWrite(t, "environments/fake", map[string]interface{}{
		"token_url": srv.tokenURL(), "revocation_url": srv.URL + "/connect/revocation", "auth_method": "private_key_jwt",
	})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "fake", "client_id": "c", "token_per_lease": true})
	lease := e.readToken(t, "r").Secret

	revokeLease(t, e, lease) // fails the test on an error: a 204 must be success
	if len(revocations) != 1 {
		t.Fatalf("revocations = %d, want 1", len(revocations))
	}
	tokenAud := jwtClaims(t, srv.request(0).Form.Get("client_assertion"))["aud"]
	revokeAud := jwtClaims(t, revocations[0].Form.Get("client_assertion"))["aud"]
	if fmt.Sprint(revokeAud) != fmt.Sprint(tokenAud) || !strings.Contains(fmt.Sprint(revokeAud), srv.tokenURL()) {
		t.Errorf("revocation assertion aud = %v, want the token requests' %v", revokeAud, tokenAud)
	}
}

// Item 9: every operation that changes storage, and may call the bank or
// make keys on the way, runs once, on the node that can write: Vault forwards
// it from performance standbys and secondaries.
func TestPaths_WritesForwardFromPerformanceStandbysAndSecondaries(t *testing.T) {
	e := newTestEnv(t)
	writes := 0
	for _, p := range e.b.Paths {
		for op, h := range p.Operations {
			if op != logical.CreateOperation && op != logical.UpdateOperation && op != logical.DeleteOperation {
				continue
			}
			writes++
			props := h.Properties()
			if !props.ForwardPerformanceStandby || !props.ForwardPerformanceSecondary {
				t.Errorf("%s %s does not forward from performance standbys and secondaries", op, p.Pattern)
			}
		}
	}
	if writes < 10 {
		t.Errorf("found %d write operations; the paths are not what this test expects", writes)
	}
}

// newTestEnvOnNode is newTestEnv on a node in the given replication state.
func newTestEnvOnNode(t *testing.T, state consts.ReplicationState) *testEnv {
	t.Helper()
	conf := &logical.BackendConfig{
		Logger:      hclog.NewNullLogger(),
		System:      &logical.StaticSystemView{ReplicationStateVal: state, DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 24 * time.Hour},
		StorageView: &logical.InmemStorage{},
	}
	raw, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	raw.(*backend).now = clock.Now
	return &testEnv{b: raw.(*backend), storage: conf.StorageView, clock: clock, logs: &syncBuffer{}}
}

// Item 9: a performance standby cannot store the lease a token read makes;
// it answers logical.ErrReadOnly (which Vault forwards to the active node)
// before any grant. A performance secondary keeps leases of its own and
// serves the read.
func TestTokenRead_PerformanceStandbyAnswersReadOnlyBeforeAnyGrant(t *testing.T) {
	for name, tc := range map[string]struct {
		state      consts.ReplicationState
		wantGrants int
	}{
		"performance standby":   {state: consts.ReplicationPerformanceStandby, wantGrants: 0},
		"performance secondary": {state: consts.ReplicationPerformanceSecondary, wantGrants: 1},
		"active node":           {state: 0, wantGrants: 1},
	} {
		t.Run(name, func(t *testing.T) {
			// The active node writes the role; the node under test shares
			// its storage (the framework forwards writes made on it).
			active := newTestEnv(t)
			srv := newFakeAuthServer(t)
			active.setupRole(t, srv, "r", nil)
			e := newTestEnvOnNode(t, tc.state)
			e.storage = active.storage
			resp, err := e.request(logical.ReadOperation, "token/r", nil)
			if tc.wantGrants == 0 && !errors.Is(err, logical.ErrReadOnly) {
				t.Errorf("error = %v, want logical.ErrReadOnly", err)
			}
			if tc.wantGrants > 0 && (err != nil || resp.Secret == nil) {
				t.Errorf("read: %v, want a token", err)
			}
			if srv.count() != tc.wantGrants {
				t.Errorf("server saw %d grants, want %d", srv.count(), tc.wantGrants)
			}
		})
	}
}

// Item 9: discovery runs before the write lock, so a slow issuer holds up
// no other write; the environment write still lands.
func TestEnvironmentWrite_DiscoveryHoldsUpNoOtherWrite(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupRole(t, srv, "r", nil)
	asked, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	issuer := metadataServer(t, "/.well-known/openid-configuration", func(base string) map[string]interface{} {
		once.Do(func() { close(asked) })
		<-release
		return map[string]interface{}{"issuer": base, "token_endpoint": base + "/token"}
	})
	done := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.request(logical.UpdateOperation, "environments/slow", map[string]interface{}{"issuer": issuer.URL})
		done <- resp
	}()
	<-asked

	wrote := make(chan struct{})
	go func() {
		e.mustWrite(t, "roles/r", map[string]interface{}{"scopes": "bankservice"})
		close(wrote)
	}()
	select {
	case <-wrote:
	case <-time.After(5 * time.Second):
		t.Error("a role write waited for another environment's discovery")
	}
	close(release)
	if resp := <-done; resp != nil && resp.IsError() {
		t.Errorf("the environment write failed: %v", resp.Error())
	}
	<-wrote
	if got := e.do(t, logical.ReadOperation, "environments/slow", nil).Data["token_url"]; got != issuer.URL+"/token" {
		t.Errorf("discovered token_url = %v", got)
	}
}

// The generation guard: a role write that lands while a grant is in flight
// may leave the in-flight reader the old token, but the next reader gets a
// token made with the new secret.
func TestTokenRead_RoleWriteDuringGrantTakesEffectNextRead(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	inFlight, release := make(chan struct{}), make(chan struct{})
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			close(inFlight)
			<-release
		}
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"access_token": "token-for-" + r.PostForm.Get("client_secret"), "expires_in": 3600, "token_type": "Bearer",
		})
	}
	e.setupRole(t, srv, "r", nil)
	first := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.request(logical.ReadOperation, "token/r", nil)
		first <- resp
	}()
	<-inFlight
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_secret": "the-new-secret"})
	close(release)
	if resp := <-first; resp == nil || resp.Data["access_token"] != "token-for-"+testClientSecret {
		t.Errorf("the in-flight reader got %v, want the token of the old secret", resp)
	}
	if got := e.readToken(t, "r").Data["access_token"]; got != "token-for-the-new-secret" {
		t.Errorf("the next reader got %v, want a token made with the new secret", got)
	}
	if srv.count() != 2 {
		t.Errorf("server saw %d grants, want 2", srv.count())
	}
}

// Item 3 with many readers at once: 50 readers ask a fresh role for more
// life than its tokens have while the server is slow. They share the one
// grant that learns what tokens live, and every one gets 400.
func TestTokenRead_ConcurrentImpossibleMinRemainingShareOneGrant(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	release := make(chan struct{})
	srv.respond = func(w http.ResponseWriter, r *http.Request, n int) {
		<-release // readers pile up on the one grant
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": fmt.Sprintf("t-%d", n), "expires_in": 3600, "token_type": "Bearer"})
	}
	e.setupRole(t, srv, "r", nil)
	const readers = 50
	errs := make(chan error, readers)
	var started sync.WaitGroup
	started.Add(readers)
	for i := 0; i < readers; i++ {
		go func() {
			started.Done()
			_, err := e.request(logical.ReadOperation, "token/r", map[string]interface{}{"min_remaining": "2h"})
			errs <- err
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let them reach the flight
	close(release)
	for i := 0; i < readers; i++ {
		if err := <-errs; codeOf(err) != http.StatusBadRequest {
			t.Errorf("reader %d: %v, want 400", i, err)
		}
	}
	if srv.count() != 1 {
		t.Errorf("%d readers with an impossible min_remaining cost %d grants, want 1", readers, srv.count())
	}
}
