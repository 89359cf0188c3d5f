package aritma

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// signedBy is the kid in the header of the assertion of the server's last
// request.
func signedBy(t *testing.T, srv *fakeAuthServer) string {
	t.Helper()
	assertion := srv.request(srv.count() - 1).Form.Get("client_assertion")
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(assertion, ".")[0])
	if err != nil {
		t.Fatalf("assertion header: %v", err)
	}
	var header struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatal(err)
	}
	return header.Kid
}

// keyStates maps each kid of the role read to its state.
func keyStates(t *testing.T, e *testEnv, role string) map[string]string {
	t.Helper()
	states := map[string]string{}
	for _, k := range e.do(t, logical.ReadOperation, "roles/"+role, nil).Data["keys"].([]map[string]interface{}) {
		states[k["kid"].(string)] = k["state"].(string)
	}
	return states
}

func (e *testEnv) setupJWTRole(t *testing.T, srv *fakeAuthServer, extra map[string]interface{}) {
	t.Helper()
	e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": srv.tokenURL(), "auth_method": "private_key_jwt"})
	data := map[string]interface{}{"environment": "bank", "client_id": "c", "signing_algorithm": "ES256"}
	for k, v := range extra {
		data[k] = v
	}
	e.mustWrite(t, "roles/r", data)
}

// Item 5: rotation is two-phase. A new key is in the JWKS at once and signs
// only after the role's key_activation_delay (24h by default), or from an
// explicit promote; a pending key may be deleted, the current one not.
func TestKeyRotation_PublishedFirstSignsAfterDelay(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupJWTRole(t, srv, nil)
	e.readToken(t, "r")
	first := signedBy(t, srv)

	rotated := e.do(t, logical.UpdateOperation, "roles/r/keys/rotate", nil).Data
	second := rotated["kid"].(string)
	if want := e.clock.Now().Add(24 * time.Hour).Format(time.RFC3339); rotated["activates_at"] != want {
		t.Errorf("activates_at = %v, want %s", rotated["activates_at"], want)
	}
	if set := e.roleJWKS(t, "r"); len(set.Keys) != 2 || set.Keys[1].KeyID != second {
		t.Fatalf("the new key is not published at once: %+v", set.Keys)
	}
	if got := keyStates(t, e, "r"); got[first] != "current" || got[second] != "pending" {
		t.Errorf("key states = %v, want the old current and the new pending", got)
	}

	e.clock.Advance(50 * time.Minute) // the cached token needs replacing
	e.readToken(t, "r")
	if got := signedBy(t, srv); got != first {
		t.Errorf("a grant before the new key's activation was signed by %s, want the old key %s", got, first)
	}
	e.clock.Advance(24 * time.Hour)
	e.readToken(t, "r")
	if got := signedBy(t, srv); got != second {
		t.Errorf("a grant after the activation was signed by %s, want the new key %s", got, second)
	}
	if got := keyStates(t, e, "r"); got[first] != "previous" || got[second] != "current" {
		t.Errorf("key states = %v, want the old previous and the new current", got)
	}

	third := e.do(t, logical.UpdateOperation, "roles/r/keys/rotate", nil).Data["kid"].(string)
	e.do(t, logical.UpdateOperation, "roles/r/keys/"+third+"/promote", nil)
	e.clock.Advance(50 * time.Minute)
	e.readToken(t, "r")
	if got := signedBy(t, srv); got != third {
		t.Errorf("after promote the grant was signed by %s, want %s", got, third)
	}
	if resp := e.do(t, logical.DeleteOperation, "roles/r/keys/"+third, nil); resp == nil || !strings.Contains(respError(resp).Error(), "current signing key") {
		t.Errorf("deleting the current key: %v", respError(resp))
	}
	fourth := e.do(t, logical.UpdateOperation, "roles/r/keys/rotate", nil).Data["kid"].(string)
	if resp := e.do(t, logical.DeleteOperation, "roles/r/keys/"+fourth, nil); resp != nil && resp.IsError() {
		t.Errorf("deleting a pending key: %v", resp.Error())
	}
	for _, k := range e.roleJWKS(t, "r").Keys {
		if k.KeyID == fourth {
			t.Error("the deleted pending key is still published")
		}
	}
	if resp := e.do(t, logical.UpdateOperation, "roles/r/keys/nope/promote", nil); resp == nil || !strings.Contains(respError(resp).Error(), `role "r" has no key nope`) {
		t.Errorf("promoting a missing key: %v", respError(resp))
	}
	for _, bad := range []string{"-1s", "91d", "2161h"} {
		if resp := e.write(t, "roles/r", map[string]interface{}{"key_activation_delay": bad}); resp == nil || !strings.Contains(respError(resp).Error(), "key_activation_delay") {
			t.Errorf("key_activation_delay=%s: %v, want an error naming the field", bad, respError(resp))
		}
	}
}

// Item 5: a change to a role's keys alone keeps its cached token, on the
// node that made it and on nodes that learn of it by invalidation (a
// performance secondary here); a per-lease role keeps signing with the old
// key until the new one activates.
func TestKeyRotation_KeyChangeKeepsCachedToken(t *testing.T) {
	primary := newTestEnv(t)
	srv := newFakeAuthServer(t)
	primary.setupJWTRole(t, srv, nil)
	secondary := newTestEnvOnNode(t, consts.ReplicationPerformanceSecondary)
	secondary.storage = primary.storage

	before := secondary.readToken(t, "r").Data["access_token"]
	primary.do(t, logical.UpdateOperation, "roles/r/keys/rotate", nil)
	secondary.b.invalidate(context.Background(), "roles/r")
	if after := secondary.readToken(t, "r").Data["access_token"]; after != before || srv.count() != 1 {
		t.Errorf("after a rotation's invalidation the secondary made a grant (%d); want its cached token kept", srv.count())
	}

	mine := primary.readToken(t, "r").Data["access_token"]
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	primary.mustWrite(t, "roles/r", map[string]interface{}{"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	if again := primary.readToken(t, "r").Data["access_token"]; again != mine {
		t.Error("importing a private key dropped the cached token")
	}

	perLease := newTestEnv(t)
	perLease.setupJWTRole(t, srv, map[string]interface{}{"token_per_lease": true})
	perLease.readToken(t, "r")
	old := signedBy(t, srv)
	perLease.do(t, logical.UpdateOperation, "roles/r/keys/rotate", nil)
	perLease.readToken(t, "r")
	if got := signedBy(t, srv); got != old {
		t.Errorf("a per-lease read right after rotation was signed by %s, want the old key %s", got, old)
	}
}

// Item 6: the unauthenticated JWKS path does not tell which roles exist: a
// missing role answers exactly as a role without keys.
func TestJWKS_MissingRoleAnswersAsRoleWithoutKeys(t *testing.T) {
	e := newTestEnv(t)
	e.mustWrite(t, "roles/secret-role", map[string]interface{}{"client_id": "c", "client_secret": "s"})
	missing := e.do(t, logical.ReadOperation, "roles/nobody/jwks", nil).Data
	keyless := e.do(t, logical.ReadOperation, "roles/secret-role/jwks", nil).Data
	for _, field := range []string{logical.HTTPStatusCode, logical.HTTPContentType} {
		if missing[field] != keyless[field] {
			t.Errorf("%s: missing role %v, role without keys %v", field, missing[field], keyless[field])
		}
	}
	if string(missing[logical.HTTPRawBody].([]byte)) != string(keyless[logical.HTTPRawBody].([]byte)) ||
		string(missing[logical.HTTPRawBody].([]byte)) != `{"keys":[]}` || missing[logical.HTTPStatusCode] != http.StatusOK {
		t.Errorf("missing role: %v %s; want 200 {\"keys\":[]} as for a role without keys",
			missing[logical.HTTPStatusCode], missing[logical.HTTPRawBody])
	}
}

// Item 6: the JWKS is served from the stored public halves: a private key
// that does not parse any more does not stop it, since none is parsed.
func TestJWKS_NeverParsesAPrivateKey(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.setupJWTRole(t, srv, nil)
	want := e.roleJWKS(t, "r").Keys[0].KeyID

	entry, err := e.storage.Get(context.Background(), "roles/r")
	if err != nil || entry == nil {
		t.Fatalf("stored role: %v", err)
	}
	var stored map[string]interface{}
	if err := json.Unmarshal(entry.Value, &stored); err != nil {
		t.Fatal(err)
	}
	for _, k := range stored["keys"].([]interface{}) {
		k.(map[string]interface{})["private_key"] = "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"
	}
	broken, _ := logical.StorageEntryJSON("roles/r", stored)
	if err := e.storage.Put(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	if set := e.roleJWKS(t, "r"); len(set.Keys) != 1 || set.Keys[0].KeyID != want || !set.Keys[0].IsPublic() {
		t.Errorf("JWKS = %+v, want the stored public key %s", set.Keys, want)
	}
}
