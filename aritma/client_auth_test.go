package aritma

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/sdk/logical"
)

// roleJWKS reads roles/<name>/jwks as the bank would.
func (e *testEnv) roleJWKS(t *testing.T, role string) jose.JSONWebKeySet {
	t.Helper()
	resp := e.do(t, logical.ReadOperation, "roles/"+role+"/jwks", nil)
	if resp.Data[logical.HTTPStatusCode] != http.StatusOK || resp.Data[logical.HTTPContentType] != "application/jwk-set+json" {
		t.Fatalf("jwks answered %v %v", resp.Data[logical.HTTPStatusCode], resp.Data[logical.HTTPContentType])
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &set); err != nil {
		t.Fatalf("jwks body: %v", err)
	}
	return set
}

// A private_key_jwt role sends a client assertion signed by its current key,
// which verifies against the role's published JWKS; no secret is sent.
func TestPrivateKeyJWT_GrantCarriesVerifiableAssertion(t *testing.T) {
	for _, alg := range []string{algRS256, algPS256, algES256} {
		t.Run(alg, func(t *testing.T) {
			e := newTestEnv(t)
			srv := newFakeAuthServer(t)
			e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": srv.tokenURL(), "auth_method": "private_key_jwt"})
			e.mustWrite(t, "roles/r", map[string]interface{}{
				"environment": "bank", "client_id": "jwt-client", "signing_algorithm": alg, "scopes": "api",
			})
			e.readToken(t, "r")

			set := e.roleJWKS(t, "r")
			if len(set.Keys) != 1 || set.Keys[0].Algorithm != alg || !set.Keys[0].IsPublic() {
				t.Fatalf("jwks = %+v, want one public %s key", set.Keys, alg)
			}
			form := srv.request(0).Form
			if form.Get("client_assertion_type") != clientAssertionType || form.Get("client_secret") != "" || form.Get("client_id") != "jwt-client" {
				t.Errorf("form = %v", form)
			}
			if auth := srv.request(0).Authorization; auth != "" {
				t.Errorf("Authorization = %q, want none", auth)
			}
			claims := verifyAssertion(t, form.Get("client_assertion"), set.Keys[0], alg)
			if claims.Audience[0] != srv.tokenURL() || claims.Issuer != "jwt-client" {
				t.Errorf("aud %v iss %q", claims.Audience, claims.Issuer)
			}
		})
	}
}

// With key_activation_delay=0, rotation adds a key that signs the next
// grant; the old key stays published until deleted; the current key cannot
// be deleted.
func TestPrivateKeyJWT_RotateAndDeleteKeys(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	e.mustWrite(t, "environments/bank", map[string]interface{}{"token_url": srv.tokenURL()})
	e.mustWrite(t, "roles/r", map[string]interface{}{
		"environment": "bank", "client_id": "c", "auth_method": "private_key_jwt", "signing_algorithm": "ES256",
		"key_activation_delay": "0s",
	})
	first := e.roleJWKS(t, "r").Keys[0].KeyID
	e.readToken(t, "r")

	rotated := e.do(t, logical.UpdateOperation, "roles/r/keys/rotate", map[string]interface{}{"signing_algorithm": "PS256"})
	second := rotated.Data["kid"].(string)
	if second == first || rotated.Data["algorithm"] != "PS256" {
		t.Fatalf("rotate = %v", rotated.Data)
	}
	set := e.roleJWKS(t, "r")
	if len(set.Keys) != 2 || set.Keys[0].KeyID != first || set.Keys[1].KeyID != second {
		t.Fatalf("after rotation the JWKS holds %d keys, want the old and the new", len(set.Keys))
	}
	// The cached token keeps serving: it is as valid as before.
	e.readToken(t, "r")
	if srv.count() != 1 {
		t.Errorf("rotation caused a grant: %d requests, want 1", srv.count())
	}
	// The next grant signs with the new key.
	e.clock.Advance(50 * time.Minute)
	e.readToken(t, "r")
	verifyAssertion(t, srv.request(srv.count()-1).Form.Get("client_assertion"), set.Keys[1], "PS256")

	role := e.do(t, logical.ReadOperation, "roles/r", nil).Data
	keys := role["keys"].([]map[string]interface{})
	if len(keys) != 2 || keys[1]["current"] != true || keys[0]["current"] != false || role["jwks_path"] != "roles/r/jwks" {
		t.Errorf("role read keys = %v jwks_path %v", keys, role["jwks_path"])
	}
	for _, k := range keys {
		for field := range k {
			if strings.Contains(field, "private") || strings.Contains(field, "pem") {
				t.Errorf("role read shows key field %q", field)
			}
		}
	}

	resp := e.do(t, logical.DeleteOperation, "roles/r/keys/"+second, nil)
	if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), "is the role's current signing key") {
		t.Errorf("deleting the current key: %v", respError(resp))
	}
	e.do(t, logical.DeleteOperation, "roles/r/keys/"+first, nil)
	if set := e.roleJWKS(t, "r"); len(set.Keys) != 1 || set.Keys[0].KeyID != second {
		t.Errorf("after deleting the old key the JWKS = %+v", set.Keys)
	}
}

// The JWKS path needs no Vault token; only public keys are in it. The
// consent callback is the only other unauthenticated path.
func TestPrivateKeyJWT_JWKSUnauthenticatedAndPublicOnly(t *testing.T) {
	e := newTestEnv(t)
	if got := e.b.SpecialPaths().Unauthenticated; len(got) != 2 || got[0] != "roles/+/jwks" || got[1] != "callback" {
		t.Errorf("unauthenticated paths = %v", got)
	}
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_id": "c", "auth_method": "private_key_jwt"})
	raw := e.do(t, logical.ReadOperation, "roles/r/jwks", nil).Data[logical.HTTPRawBody].([]byte)
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`} {
		if strings.Contains(string(raw), private+":") {
			t.Errorf("the JWKS carries the private member %s", private)
		}
	}
}

func TestPrivateKeyJWT_ImportedKeyAndValidation(t *testing.T) {
	e := newTestEnv(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	e.mustWrite(t, "roles/r", map[string]interface{}{"client_id": "c", "auth_method": "private_key_jwt", "private_key": keyPEM})
	set := e.roleJWKS(t, "r")
	if len(set.Keys) != 1 || set.Keys[0].Algorithm != algES256 {
		t.Fatalf("imported key: %+v", set.Keys)
	}
	pub := set.Keys[0].Key.(*ecdsa.PublicKey)
	if !pub.Equal(&ecKey.PublicKey) {
		t.Error("the published key is not the imported key's public half")
	}
	if out, _ := json.Marshal(e.do(t, logical.ReadOperation, "roles/r", nil).Data); strings.Contains(string(out), "PRIVATE KEY") {
		t.Error("the role read shows the private key")
	}

	for name, tc := range map[string]struct {
		data    map[string]interface{}
		wantErr string
	}{
		"bad key":           {data: map[string]interface{}{"client_id": "c", "auth_method": "private_key_jwt", "private_key": "nope"}, wantErr: "private_key holds no PEM block"},
		"bad algorithm":     {data: map[string]interface{}{"client_id": "c", "auth_method": "private_key_jwt", "signing_algorithm": "HS256"}, wantErr: `signing_algorithm must be one of RS256, PS256, ES256, got "HS256"`},
		"bad auth method":   {data: map[string]interface{}{"client_id": "c", "client_secret": "s", "auth_method": "none"}, wantErr: `auth_method must be one of`},
		"secret method":     {data: map[string]interface{}{"client_id": "c", "auth_method": "client_secret_basic"}, wantErr: "client_secret is required"},
		"tls without cert":  {data: map[string]interface{}{"client_id": "c", "auth_method": "tls_client_auth"}, wantErr: `tls_client_auth needs tls_client_cert and tls_client_key, on the role or on environment "production"`},
		"cert without key":  {data: map[string]interface{}{"client_id": "c", "auth_method": "tls_client_auth", "tls_client_cert": testCertPEM(t)}, wantErr: "tls_client_cert and tls_client_key are both required"},
		"mismatched pair":   {data: map[string]interface{}{"client_id": "c", "auth_method": "tls_client_auth", "tls_client_cert": testCertPEM(t), "tls_client_key": keyPEM}, wantErr: "do not make a key pair"},
		"revocation absent": {data: map[string]interface{}{"client_id": "c", "client_secret": "s", "token_per_lease": true}, wantErr: ""},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			resp := e.write(t, "roles/v", tc.data)
			if tc.wantErr == "" {
				if resp == nil || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "has no revocation endpoint") {
					t.Errorf("want a warning about the missing revocation endpoint, got %v", resp)
				}
				return
			}
			if resp == nil || !resp.IsError() || !strings.Contains(resp.Error().Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", respError(resp), tc.wantErr)
			}
			if keyLine := strings.Split(keyPEM, "\n")[1]; strings.Contains(resp.Error().Error(), keyLine) {
				t.Error("the error quotes key material")
			}
		})
	}
}

// tlsClientPair makes a self-signed client certificate and its key, PEM.
func tlsClientPair(t *testing.T, cn string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// newTLSAuthServer is an https authorization server that requires a client
// certificate and records its subject.
func newTLSAuthServer(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var subjects []string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		subjects = append(subjects, r.TLS.PeerCertificates[0].Subject.CommonName+" "+r.PostForm.Encode())
		mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]interface{}{"access_token": "mtls-token", "expires_in": 300, "token_type": "Bearer"})
	}))
	// The server names a CA that issued none of the test certificates, as
	// servers accepting both CA-issued and self-signed certificates do.
	unrelated := x509.NewCertPool()
	block, _ := pem.Decode([]byte(testCertPEM(t)))
	ca, _ := x509.ParseCertificate(block.Bytes)
	unrelated.AddCert(ca)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, ClientCAs: unrelated}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, &subjects
}

func serverCAPEM(srv *httptest.Server) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

// tls_client_auth presents the role's certificate (or the environment's)
// and sends only client_id in the body; reads show the certificate's expiry
// and never the key.
func TestTLSClientAuth_PresentsCertificate(t *testing.T) {
	e := newTestEnv(t)
	srv, subjects := newTLSAuthServer(t)
	envCert, envKey := tlsClientPair(t, "env-cert")
	roleCert, roleKey := tlsClientPair(t, "role-cert")
	e.mustWrite(t, "environments/mtls", map[string]interface{}{
		"token_url": srv.URL + "/token", "auth_method": "tls_client_auth", "ca_cert": serverCAPEM(srv),
		"tls_client_cert": envCert, "tls_client_key": envKey,
	})
	e.mustWrite(t, "roles/own", map[string]interface{}{
		"environment": "mtls", "client_id": "own", "tls_client_cert": roleCert, "tls_client_key": roleKey,
	})
	e.mustWrite(t, "roles/inherited", map[string]interface{}{"environment": "mtls", "client_id": "inherited"})

	e.readToken(t, "own")
	e.readToken(t, "inherited")
	if want := []string{"role-cert client_id=own&grant_type=client_credentials", "env-cert client_id=inherited&grant_type=client_credentials"}; strings.Join(*subjects, "|") != strings.Join(want, "|") {
		t.Errorf("the server saw %q, want %q", *subjects, want)
	}

	for path, key := range map[string]string{"roles/own": roleKey, "environments/mtls": envKey} {
		data := e.do(t, logical.ReadOperation, path, nil).Data
		if data["tls_client_cert_expires_at"] != "2027-01-02T03:04:05Z" || data["tls_client_key_set"] != true {
			t.Errorf("%s: expires_at %v key_set %v", path, data["tls_client_cert_expires_at"], data["tls_client_key_set"])
		}
		out, _ := json.Marshal(data)
		if strings.Contains(string(out), strings.TrimSpace(strings.Split(key, "\n")[1])) {
			t.Errorf("%s: the read shows the private key", path)
		}
	}
}

// Without a client certificate the handshake fails, and the reader is told.
func TestTLSClientAuth_ServerRejectsMissingCertificate(t *testing.T) {
	e := newTestEnv(t)
	srv, _ := newTLSAuthServer(t)
	e.mustWrite(t, "environments/mtls", map[string]interface{}{"token_url": srv.URL + "/token", "ca_cert": serverCAPEM(srv)})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "mtls", "client_id": "c", "client_secret": "s"})
	_, err := e.request(logical.ReadOperation, "token/r", nil)
	if err == nil || !strings.Contains(err.Error(), "token request to "+srv.URL+"/token failed") {
		t.Errorf("error = %v, want the failed handshake named", err)
	}
}
