//go:build e2e

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
	"github.com/go-jose/go-jose/v4"
)

// fetchJWKS reads a role's JWKS from Vault without a Vault token, as a bank
// fetching the client's jwks_uri would.
func fetchJWKS(t *testing.T, v *vaultServer, role string) (string, map[string]interface{}) {
	t.Helper()
	jwksURL := "http://" + v.Addr + "/v1/aritma/roles/" + role + "/jwks"
	resp, err := http.Get(jwksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/jwk-set+json") {
		t.Fatalf("GET %s without a token: %s %s\n%s", jwksURL, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var set map[string]interface{}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v", err)
	}
	return jwksURL, set
}

// private_key_jwt with keys generated in Vault, for each algorithm, against
// oidc-provider: the JWKS registered at the server comes from Vault's
// unauthenticated jwks path; one client is registered by jwks_uri, so that
// a rotation in Vault reaches the server without re-registering.
func TestE2E_PrivateKeyJWT(t *testing.T) {
	t.Parallel()
	v := startVaultDev(t)
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	algs := []string{"RS256", "PS256", "ES256"}
	var clients []map[string]interface{}
	for _, alg := range algs {
		role := "jwt-" + strings.ToLower(alg)
		v.write(t, "aritma/roles/"+role, map[string]interface{}{
			"environment": "development", "client_id": role, "auth_method": "private_key_jwt",
			"signing_algorithm": alg, "scopes": "api",
		})
		_, jwks := fetchJWKS(t, v, role)
		clients = append(clients, map[string]interface{}{
			"client_id": role, "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": alg,
			"jwks": jwks, "scope": "api", "access_token_format": "jwt",
		})
	}
	// One key imported rather than born in Vault, so that the secret scan
	// below knows a private key to look for.
	importedDER, _ := x509.MarshalPKCS8PrivateKey(newECKey(t))
	importedKey := pemOf("PRIVATE KEY", importedDER)
	noteSecret(importedKey)
	v.write(t, "aritma/roles/jwt-imported", map[string]interface{}{
		"environment": "development", "client_id": "jwt-imported", "auth_method": "private_key_jwt", "private_key": importedKey, "scopes": "api",
	})
	_, importedJWKS := fetchJWKS(t, v, "jwt-imported")
	clients = append(clients, map[string]interface{}{
		"client_id": "jwt-imported", "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
		"jwks": importedJWKS, "scope": "api", "access_token_format": "jwt",
	})
	v.write(t, "aritma/roles/jwt-uri", map[string]interface{}{
		"environment": "development", "client_id": "jwt-uri", "auth_method": "private_key_jwt", "signing_algorithm": "ES256", "scopes": "api",
	})
	jwksURI, _ := fetchJWKS(t, v, "jwt-uri")
	clients = append(clients, map[string]interface{}{
		"client_id": "jwt-uri", "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwksURI, "scope": "api", "access_token_format": "jwt",
	})
	oauth := startOAuthServerConfig(t, oauthConfig{TokenTTL: 3600, RawClients: clients})
	v.write(t, "aritma/environments/development", map[string]interface{}{"token_url": oauth.TokenEndpoint})

	secrets := map[string]string{"imported private key": importedKey}
	for _, role := range []string{"jwt-rs256", "jwt-ps256", "jwt-es256", "jwt-imported", "jwt-uri"} {
		secret := v.readTokenCLI(t, v.Token, role)
		if in := oauth.verify(t, secret.Data["access_token"].(string)); !in.Active || in.ClientID != role {
			t.Errorf("%s: the server saw %+v", role, in)
		}
		secrets[role+" access token"] = secret.Data["access_token"].(string)
	}

	// Rotate in Vault, two-phase: the new key is published at once and signs
	// only after the role's key_activation_delay, longer than oidc-provider
	// caches a jwks_uri (60 s). Meanwhile the cached token keeps serving, and
	// a grant is still signed with the old key, which the server knows; once
	// the new key signs, the server has refetched the JWKS and takes it.
	v.write(t, "aritma/roles/jwt-uri", map[string]interface{}{"key_activation_delay": "62s"})
	rotatedAt := time.Now()
	oldKid := v.mustCLI(t, "read", "-field=keys", "aritma/roles/jwt-uri")
	v.mustCLI(t, "write", "-f", "aritma/roles/jwt-uri/keys/rotate")
	role, err := v.Client.Logical().Read("aritma/roles/jwt-uri")
	if err != nil {
		t.Fatal(err)
	}
	keys := role.Data["keys"].([]interface{})
	oldKey, newKey := keys[0].(map[string]interface{}), keys[1].(map[string]interface{})
	if len(keys) != 2 || !strings.Contains(oldKid, oldKey["kid"].(string)) || oldKey["state"] != "current" || newKey["state"] != "pending" {
		t.Fatalf("after rotation the role has keys %v, want the old current and the new pending", keys)
	}
	if _, jwks := fetchJWKS(t, v, "jwt-uri"); len(jwks["keys"].([]interface{})) != 2 {
		t.Errorf("after rotation the JWKS has %d keys, want the old and the new", len(jwks["keys"].([]interface{})))
	}
	v.readTokenCLI(t, v.Token, "jwt-uri")
	if st := oauth.stats(t); st.Grants != 5 {
		t.Errorf("rotation caused a grant: %d grants, want 5", st.Grants)
	}
	// min_remaining=59m58s asks for a new token: the cached one is over two
	// seconds old, and a new one has 59m59s (a second goes to rounding).
	time.Sleep(2 * time.Second)
	if out, err := v.cli(v.Token, "read", "-format=json", "aritma/token/jwt-uri", "min_remaining=59m58s"); err != nil {
		t.Fatalf("a grant right after the rotation (signed with the old key) failed: %v\n%s", err, out)
	}
	time.Sleep(time.Until(rotatedAt.Add(63 * time.Second)))
	out, err := v.cli(v.Token, "read", "-format=json", "aritma/token/jwt-uri", "min_remaining=59m58s")
	if err != nil {
		t.Fatalf("a grant signed with the rotated key failed: %v\n%s", err, out)
	}
	if st := oauth.stats(t); st.Grants != 7 || st.Failures != 0 {
		t.Errorf("server stats = %+v, want 7 grants and no failures", st)
	}
	v.mustCLI(t, "delete", "aritma/roles/jwt-uri/keys/"+oldKey["kid"].(string))
	if _, jwks := fetchJWKS(t, v, "jwt-uri"); len(jwks["keys"].([]interface{})) != 1 {
		t.Errorf("after deleting the old key the JWKS has %d keys, want 1", len(jwks["keys"].([]interface{})))
	}
	// The role read shows key IDs only; no log holds a key or a token.
	out = v.mustCLI(t, "read", "-format=json", "aritma/roles/jwt-imported")
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("the role read shows a private key")
	}
	assertNoSecrets(t, secrets, append(v.logFiles(), oauth.LogPath), out)
}

// testPKI makes a CA, a server certificate for 127.0.0.1 and client
// certificates, all in memory.
type testPKI struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CAPEM  string
	pool   *x509.CertPool
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "aritma e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{caCert: cert, caKey: key, CAPEM: pemOf("CERTIFICATE", der), pool: pool}
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func pemOf(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}

// issue returns a certificate and key (PEM) signed by the CA, or self-signed.
func (p *testPKI) issue(t *testing.T, cn string, server, selfSigned bool) (certPEM, keyPEM string) {
	t.Helper()
	key := newECKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(12 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	parent, signer := p.caCert, p.caKey
	if selfSigned {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM = pemOf("PRIVATE KEY", keyDER)
	noteSecret(strings.Split(keyPEM, "\n")[1]) // a line of the key, for the output scan
	return pemOf("CERTIFICATE", der), keyPEM
}

// Mutual TLS client authentication (RFC 8705) against oidc-provider behind
// https: tls_client_auth with a CA-issued certificate matched by subject DN,
// self_signed_tls_client_auth with a certificate registered in the client's
// JWKS, and a client whose certificate the server does not know refused.
func TestE2E_MutualTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	serverCert, serverKey := pki.issue(t, "127.0.0.1", true, false)
	caIssuedCert, caIssuedKey := pki.issue(t, "mtls-client", false, false)
	selfCert, selfKey := pki.issue(t, "self-signed-client", false, true)
	strangerCert, strangerKey := pki.issue(t, "stranger", false, true)
	block, _ := pem.Decode([]byte(selfCert))

	oauth := startOAuthServerConfig(t, oauthConfig{
		TokenTTL: 3600,
		Extra:    map[string]interface{}{"tls": map[string]string{"cert": serverCert, "key": serverKey, "client_ca": pki.CAPEM}},
		ServerCA: pki.pool,
		RawClients: []map[string]interface{}{
			{"client_id": "mtls-client", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=mtls-client", "scope": "api", "access_token_format": "jwt"},
			{"client_id": "self-signed-client", "token_endpoint_auth_method": "self_signed_tls_client_auth", "scope": "api", "access_token_format": "jwt",
				"jwks": map[string]interface{}{"keys": []interface{}{selfSignedJWK(t, block.Bytes)}}},
		},
	})
	if !strings.HasPrefix(oauth.TokenEndpoint, "https://") {
		t.Fatalf("the OAuth server is not on https: %s", oauth.TokenEndpoint)
	}

	v := startVaultDev(t)
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/mtls", map[string]interface{}{
		"token_url": oauth.TokenEndpoint, "auth_method": "tls_client_auth", "ca_cert": pki.CAPEM,
		"tls_client_cert": caIssuedCert, "tls_client_key": caIssuedKey,
	})
	v.write(t, "aritma/roles/mtls-client", map[string]interface{}{"environment": "mtls", "client_id": "mtls-client", "scopes": "api"})
	v.write(t, "aritma/roles/self-signed-client", map[string]interface{}{
		"environment": "mtls", "client_id": "self-signed-client", "auth_method": "self_signed_tls_client_auth",
		"tls_client_cert": selfCert, "tls_client_key": selfKey, "scopes": "api",
	})
	v.write(t, "aritma/roles/stranger", map[string]interface{}{
		"environment": "mtls", "client_id": "self-signed-client", "auth_method": "self_signed_tls_client_auth",
		"tls_client_cert": strangerCert, "tls_client_key": strangerKey, "scopes": "api",
	})

	for _, role := range []string{"mtls-client", "self-signed-client"} {
		secret := v.readTokenCLI(t, v.Token, role)
		if in := oauth.verify(t, secret.Data["access_token"].(string)); !in.Active || in.ClientID != role {
			t.Errorf("%s: the server saw %+v", role, in)
		}
	}
	out, err := v.cli(v.Token, "read", "aritma/token/stranger")
	if err == nil || !strings.Contains(out, "invalid_client") {
		t.Errorf("an unregistered certificate: want invalid_client, got %v\n%s", err, out)
	}

	role, err := v.Client.Logical().Read("aritma/roles/self-signed-client")
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode([]byte(selfCert))
	cert, _ := x509.ParseCertificate(block.Bytes)
	if got := role.Data["tls_client_cert_expires_at"]; got != cert.NotAfter.UTC().Format(time.RFC3339) {
		t.Errorf("tls_client_cert_expires_at = %v, want %s", got, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	assertNoSecrets(t, map[string]string{"client key": caIssuedKey, "self-signed key": selfKey},
		append(v.logFiles(), oauth.LogPath), fmt.Sprint(role.Data))
}

// selfSignedJWK is the JWK that registers a self-signed certificate (x5c).
func selfSignedJWK(t *testing.T, der []byte) jose.JSONWebKey {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: cert.PublicKey, Use: "sig", Certificates: []*x509.Certificate{cert}}
}

// Discovery: an environment names the issuer; the engine takes the token and
// revocation endpoints and the supported auth methods from oidc-provider's
// metadata, and refuses a role whose method the server does not list.
func TestE2E_Discovery(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "disc-client", Secret: randomSecret("disc-secret"), AuthMethod: "client_secret_basic", Scope: "api", Format: "opaque"}
	oauth := startOAuthServerConfig(t, oauthConfig{
		TokenTTL: 3600, Clients: []oauthClient{client},
		Extra: map[string]interface{}{"client_auth_methods": []string{"client_secret_basic", "private_key_jwt"}},
	})
	v := startVaultDev(t)
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/bank", map[string]interface{}{"issuer": oauth.Issuer, "auth_method": "client_secret_basic"})

	env, err := v.Client.Logical().Read("aritma/environments/bank")
	if err != nil {
		t.Fatal(err)
	}
	discovered := env.Data["discovered"].(map[string]interface{})
	if env.Data["token_url"] != oauth.TokenEndpoint || discovered["revocation_endpoint"] != oauth.RevocationEndpoint {
		t.Errorf("discovered %v, want token %s and revocation %s", env.Data, oauth.TokenEndpoint, oauth.RevocationEndpoint)
	}
	v.write(t, "aritma/roles/disc", map[string]interface{}{"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api"})
	if in := oauth.introspect(t, v.readTokenCLI(t, v.Token, "disc").Data["access_token"].(string)); !in.Active {
		t.Errorf("token from a discovered environment is not active: %+v", in)
	}

	out, err := v.cli(v.Token, "write", "aritma/roles/post", "environment=bank", "client_id=x", "client_secret=y", "auth_method=client_secret_post")
	if err == nil || !strings.Contains(out, "does not support client_secret_post; its metadata lists client_secret_basic, private_key_jwt") {
		t.Errorf("a role with an unlisted method: want it refused, got %v\n%s", err, out)
	}
	out, err = v.cli(v.Token, "write", "aritma/environments/wrong", "issuer="+oauth.Issuer+"/other")
	if err == nil || !strings.Contains(out, "no metadata for issuer") {
		t.Errorf("a wrong issuer: want it refused, got %v\n%s", err, out)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret}, append(v.logFiles(), oauth.LogPath))
}

// Per-lease tokens: every read gets its own token; revoking a lease revokes
// its token at the server (introspection turns inactive) and no other; Vault
// revoking the leases of a revoked Vault token does the same. Shared tokens
// survive their leases' revocation.
func TestE2E_PerLeaseTokensRevokedWithLease(t *testing.T) {
	t.Parallel()
	client := oauthClient{ID: "lease-client", Secret: randomSecret("lease-secret"), AuthMethod: "client_secret_basic", Scope: "api", Format: "opaque"}
	oauth := startOAuthServer(t, 3600, client)
	v := startVaultDev(t)
	v.registerPlugin(t, "v0.1.0")
	v.enableAritma(t)
	v.write(t, "aritma/environments/bank", map[string]interface{}{"issuer": oauth.Issuer, "auth_method": "client_secret_basic"})
	for role, perLease := range map[string]bool{"own": true, "shared": false} {
		v.write(t, "aritma/roles/"+role, map[string]interface{}{
			"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api", "token_per_lease": perLease,
		})
	}

	first, second := v.readTokenCLI(t, v.Token, "own"), v.readTokenCLI(t, v.Token, "own")
	t1, t2 := first.Data["access_token"].(string), second.Data["access_token"].(string)
	if t1 == t2 {
		t.Fatal("two reads of a per-lease role shared a token")
	}
	v.mustCLI(t, "lease", "revoke", first.LeaseID)
	if oauth.introspect(t, t1).Active {
		t.Error("the revoked lease's token is still active at the server")
	}
	if !oauth.introspect(t, t2).Active {
		t.Error("revoking one lease revoked another lease's token")
	}

	// A reader's Vault token is revoked: Vault revokes its leases, and with
	// them its per-lease tokens.
	v.mustCLI(t, "policy", "write", "reader", writePolicy(t, `path "aritma/token/*" { capabilities = ["read"] }`))
	reader := strings.TrimSpace(v.mustCLI(t, "token", "create", "-policy=reader", "-field=token"))
	own := v.readTokenCLI(t, reader, "own").Data["access_token"].(string)
	shared := v.readTokenCLI(t, reader, "shared")
	v.mustCLI(t, "token", "revoke", reader)
	waitInactive(t, oauth, own)

	v.mustCLI(t, "lease", "revoke", shared.LeaseID)
	if !oauth.introspect(t, shared.Data["access_token"].(string)).Active {
		t.Error("revoking a lease of the shared token revoked it at the server")
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "per-lease token": t2, "shared token": shared.Data["access_token"].(string)},
		append(v.logFiles(), oauth.LogPath))
}

// waitInactive waits for a token to turn inactive (Vault revokes a revoked
// token's leases in the background).
func waitInactive(t *testing.T, oauth *oauthServer, token string) {
	t.Helper()
	waitFor(t, 30*time.Second, "the token to turn inactive after its Vault token was revoked", func() bool {
		return !oauth.introspect(t, token).Active
	})
}

// An environment's proxy_url carries the token requests to an https
// server, through a CONNECT tunnel (the engine never sends an http request,
// which would carry the secret in clear, through a proxy).
func TestE2E_Proxy(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	serverCert, serverKey := pki.issue(t, "127.0.0.1", true, false)
	client := oauthClient{ID: "proxied-client", Secret: randomSecret("proxied-secret"), AuthMethod: "client_secret_post", Scope: "api", Format: "jwt"}
	oauth := startOAuthServerConfig(t, oauthConfig{
		TokenTTL: 3600, Clients: []oauthClient{client}, ServerCA: pki.pool,
		Extra: map[string]interface{}{"tls": map[string]string{"cert": serverCert, "key": serverKey}},
	})
	proxy := testservers.StartConnectProxy(false)
	t.Cleanup(proxy.Close)

	v := startVaultDev(t)
	v.setupEngine(t, oauth, "bank", "client_secret_post")
	v.write(t, "aritma/environments/bank", map[string]interface{}{"proxy_url": proxy.URL, "ca_cert": pki.CAPEM})
	v.write(t, "aritma/roles/p", map[string]interface{}{"environment": "bank", "client_id": client.ID, "client_secret": client.Secret, "scopes": "api"})
	secret := v.readTokenCLI(t, v.Token, "p")
	if !oauth.verify(t, secret.Data["access_token"].(string)).Active {
		t.Error("the proxied token is not active")
	}
	// At least one tunnel: Go's transport may open a spare connection.
	if proxy.Tunnels() < 1 || oauth.stats(t).Grants != 1 {
		t.Errorf("the proxy opened %d tunnels for %d grants, want the grant through a tunnel", proxy.Tunnels(), oauth.stats(t).Grants)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "access token": secret.Data["access_token"].(string)},
		append(v.logFiles(), oauth.LogPath))
}
