package aritma

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func TestGenerateSigningKey_SignsVerifiableAssertions(t *testing.T) {
	now := time.Date(2026, 11, 23, 16, 0, 0, 0, time.UTC)
	for _, alg := range []string{algRS256, algPS256, algES256} {
		t.Run(alg, func(t *testing.T) {
			key, err := generateSigningKey(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			if key.Algorithm != alg || key.ID == "" || !strings.Contains(key.PEM, "BEGIN PRIVATE KEY") {
				t.Fatalf("key = %s %s", key.Algorithm, key.ID)
			}
			signer, err := newAssertionSigner(key)
			if err != nil {
				t.Fatal(err)
			}
			a1, err := signer.assertion("client-1", "https://id.aritma.io/connect/token", now)
			if err != nil {
				t.Fatal(err)
			}
			a2, _ := signer.assertion("client-1", "https://id.aritma.io/connect/token", now)

			raw, err := key.publicJWK()
			if err != nil {
				t.Fatal(err)
			}
			var pub jose.JSONWebKey
			if err := pub.UnmarshalJSON(raw); err != nil || !pub.IsPublic() || pub.KeyID != key.ID {
				t.Fatalf("public JWK %s: %v", raw, err)
			}
			claims := verifyAssertion(t, a1, pub, alg)
			if claims.Issuer != "client-1" || claims.Subject != "client-1" {
				t.Errorf("iss/sub = %q/%q, want client-1", claims.Issuer, claims.Subject)
			}
			if len(claims.Audience) != 1 || claims.Audience[0] != "https://id.aritma.io/connect/token" {
				t.Errorf("aud = %v", claims.Audience)
			}
			if got := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); got != time.Minute {
				t.Errorf("assertion lives %s, want 1m", got)
			}
			if claims.ID == "" || claims.ID == verifyAssertion(t, a2, pub, alg).ID {
				t.Errorf("jti %q is empty or repeats", claims.ID)
			}
		})
	}
}

func verifyAssertion(t *testing.T, assertion string, pub jose.JSONWebKey, alg string) jwt.Claims {
	t.Helper()
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		t.Fatalf("parsing the assertion: %v", err)
	}
	if h := tok.Headers[0]; h.KeyID != pub.KeyID || h.ExtraHeaders["typ"] != "JWT" {
		t.Errorf("header kid %q typ %v, want %q JWT", h.KeyID, h.ExtraHeaders["typ"], pub.KeyID)
	}
	var claims jwt.Claims
	if err := tok.Claims(pub.Key, &claims); err != nil {
		t.Fatalf("the assertion's signature does not verify with the published key: %v", err)
	}
	return claims
}

func TestImportSigningKey(t *testing.T) {
	now := time.Now()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pkcs8 := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	sec1DER, _ := x509.MarshalECPrivateKey(ecKey)
	sec1 := string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1DER}))

	for name, tc := range map[string]struct {
		pem, alg, wantAlg, wantErr string
	}{
		"RSA PKCS #8 defaults to RS256": {pem: pkcs8(rsaKey), wantAlg: algRS256},
		"RSA PKCS #1 as PS256":          {pem: pkcs1, alg: algPS256, wantAlg: algPS256},
		"EC SEC 1 defaults to ES256":    {pem: sec1, wantAlg: algES256},
		"EC PKCS #8":                    {pem: pkcs8(ecKey), alg: algES256, wantAlg: algES256},
		"RSA key with ES256":            {pem: pkcs8(rsaKey), alg: algES256, wantErr: "is an RSA key, which signs RS256 or PS256, not ES256"},
		"EC key with RS256":             {pem: sec1, alg: algRS256, wantErr: "is a P-256 key, which signs ES256, not RS256"},
		"1024-bit RSA":                  {pem: pkcs8(smallRSA), wantErr: "is a 1024-bit RSA key"},
		"P-384":                         {pem: pkcs8(p384), wantErr: "ES256 needs P-256"},
		"not PEM":                       {pem: "hunter2", wantErr: "holds no PEM block"},
		"certificate":                   {pem: testCertPEM(t), wantErr: `holds a "CERTIFICATE" PEM block`},
		"two keys":                      {pem: sec1 + sec1, wantErr: "more than one PEM block"},
		"garbage key":                   {pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", wantErr: "does not parse"},
	} {
		t.Run(name, func(t *testing.T) {
			key, err := importSigningKey(tc.pem, tc.alg, now)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && key.Algorithm != tc.wantAlg {
				t.Errorf("algorithm = %s, want %s", key.Algorithm, tc.wantAlg)
			}
		})
	}
}

// The key ID is the RFC 7638 thumbprint: importing the same key twice gives
// the same kid, whatever its PEM encoding.
func TestSigningKeyIDIsThumbprint(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	der1, _ := x509.MarshalECPrivateKey(ecKey)
	a, err := importSigningKey(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der8})), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := importSigningKey(string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der1})), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || len(a.ID) != 43 {
		t.Errorf("kids %q and %q: want the same 43-character thumbprint", a.ID, b.ID)
	}
}
