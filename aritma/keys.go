package aritma

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Signing algorithms for private_key_jwt client assertions (RFC 7518).
const (
	algRS256 = "RS256"
	algPS256 = "PS256"
	algES256 = "ES256"
)

var signingAlgorithms = []string{algRS256, algPS256, algES256}

// assertionLifetime is how long a client assertion is valid: long enough for
// clock skew and one request, short enough that a captured one is useless.
const assertionLifetime = time.Minute

// signingKey is one private key of a role, for private_key_jwt. Keys are
// generated in Vault or imported; only their public halves ever leave it.
type signingKey struct {
	// ID is the JWK thumbprint (RFC 7638) of the public key: stable, and the
	// same wherever the key is registered.
	ID        string    `json:"kid"`
	Algorithm string    `json:"algorithm"`
	PEM       string    `json:"private_key"` // PKCS #8
	CreatedAt time.Time `json:"created_at"`
	// ActivatesAt is when the key starts signing; zero (keys written before
	// rotation was two-phase) means at CreatedAt.
	ActivatesAt time.Time `json:"activates_at,omitempty"`
	// Public is the public JWK, kept so that the unauthenticated JWKS path
	// never parses a private key; empty for keys written before it was kept.
	Public json.RawMessage `json:"public_jwk,omitempty"`
}

// activation is when k starts signing.
func (k *signingKey) activation() time.Time {
	if k.ActivatesAt.IsZero() {
		return k.CreatedAt
	}
	return k.ActivatesAt
}

// generateSigningKey makes a new key for alg: RSA 2048 for RS256 and PS256,
// P-256 for ES256.
func generateSigningKey(alg string, now time.Time) (*signingKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case algRS256, algPS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case algES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, fmt.Errorf("signing_algorithm must be one of RS256, PS256, ES256, got %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generating a %s key: %w", alg, err)
	}
	return newSigningKey(priv, alg, now)
}

// importSigningKey reads a PEM private key (PKCS #8, PKCS #1 or SEC 1). An
// empty alg picks RS256 for RSA and ES256 for P-256 keys.
func importSigningKey(pemData, alg string, now time.Time) (*signingKey, error) {
	priv, err := parsePrivateKeyPEM(pemData)
	if err != nil {
		return nil, err
	}
	switch key := priv.(type) {
	case *rsa.PrivateKey:
		if key.N.BitLen() < 2048 {
			return nil, fmt.Errorf("is a %d-bit RSA key; use 2048 bits or more", key.N.BitLen())
		}
		if alg == "" {
			alg = algRS256
		}
		if alg != algRS256 && alg != algPS256 {
			return nil, fmt.Errorf("is an RSA key, which signs RS256 or PS256, not %s", alg)
		}
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return nil, fmt.Errorf("is an EC key on %s; ES256 needs P-256", key.Curve.Params().Name)
		}
		if alg == "" {
			alg = algES256
		}
		if alg != algES256 {
			return nil, fmt.Errorf("is a P-256 key, which signs ES256, not %s", alg)
		}
	default:
		return nil, fmt.Errorf("is a %T key; use RSA or EC P-256", priv)
	}
	return newSigningKey(priv, alg, now)
}

func parsePrivateKeyPEM(pemData string) (crypto.Signer, error) {
	block, rest := pem.Decode([]byte(pemData))
	if block == nil {
		return nil, errors.New("holds no PEM block (expected -----BEGIN PRIVATE KEY-----)")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("holds more than one PEM block; give one private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("holds a %q PEM block; expected a private key", block.Type)
	}
	if err != nil {
		// The parser's message never includes key material.
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("is a %T key; use RSA or EC P-256", key)
	}
	return signer, nil
}

func newSigningKey(priv crypto.Signer, alg string, now time.Time) (*signingKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding the key: %w", err)
	}
	thumb, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("computing the key's thumbprint: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(thumb)
	public, err := json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: id, Algorithm: alg, Use: "sig"})
	if err != nil {
		return nil, fmt.Errorf("encoding the public key: %w", err)
	}
	return &signingKey{
		ID:          id,
		Algorithm:   alg,
		PEM:         string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		CreatedAt:   now.UTC(),
		ActivatesAt: now.UTC(),
		Public:      public,
	}, nil
}

func (k *signingKey) signer() (crypto.Signer, error) {
	return parsePrivateKeyPEM(k.PEM)
}

// publicJWK is the key as the bank registers it, as JSON. Keys written
// before the public half was kept are derived from the private key.
func (k *signingKey) publicJWK() (json.RawMessage, error) {
	if len(k.Public) > 0 {
		return k.Public, nil
	}
	priv, err := k.signer()
	if err != nil {
		return nil, err
	}
	return json.Marshal(jose.JSONWebKey{Key: priv.Public(), KeyID: k.ID, Algorithm: k.Algorithm, Use: "sig"})
}

// signingKeyAt is the index of the key that signs at now: of the keys
// active by then, the one activated last (on a tie, the later in the list);
// -1 if none is.
func signingKeyAt(keys []signingKey, now time.Time) int {
	current := -1
	for i := range keys {
		at := keys[i].activation()
		if !at.After(now) && (current < 0 || !at.Before(keys[current].activation())) {
			current = i
		}
	}
	return current
}

// keySchedule is a role's signers in the order they take over: each signs
// from its activation until the next one's. Rotation is two-phase: a new key
// is published in the JWKS at once and signs only from its activation, so
// that the bank has fetched it first.
type keySchedule []scheduledSigner

type scheduledSigner struct {
	from   time.Time
	signer *assertionSigner
}

// newKeySchedule parses the keys that sign at now or later; keys that have
// been superseded sign nothing again.
func newKeySchedule(keys []signingKey, now time.Time) (keySchedule, error) {
	current := signingKeyAt(keys, now)
	if current < 0 {
		return nil, errors.New("no signing key is active yet")
	}
	var schedule keySchedule
	for i := range keys {
		if i != current && !keys[i].activation().After(keys[current].activation()) {
			continue
		}
		signer, err := newAssertionSigner(&keys[i])
		if err != nil {
			return nil, err
		}
		schedule = append(schedule, scheduledSigner{from: keys[i].activation(), signer: signer})
	}
	slices.SortStableFunc(schedule, func(a, b scheduledSigner) int { return a.from.Compare(b.from) })
	return schedule, nil
}

// at is the signer for an assertion made at now: the last one whose
// activation has come (the first, should the clock step back).
func (s keySchedule) at(now time.Time) *assertionSigner {
	current := s[0].signer
	for _, k := range s[1:] {
		if k.from.After(now) {
			break
		}
		current = k.signer
	}
	return current
}

// assertionSigner signs RFC 7523 client assertions with one key.
type assertionSigner struct {
	signer jose.Signer
}

func newAssertionSigner(k *signingKey) (*assertionSigner, error) {
	priv, err := k.signer()
	if err != nil {
		return nil, fmt.Errorf("key %s %v", k.ID, err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.Algorithm), Key: jose.JSONWebKey{Key: priv, KeyID: k.ID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID, err)
	}
	return &assertionSigner{signer: signer}, nil
}

// assertion is a client assertion (RFC 7523 section 3, OpenID Connect Core
// section 9): iss and sub are the client, aud the server, jti unique, and a
// short exp.
func (s *assertionSigner) assertion(clientID, audience string, now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	return jwt.Signed(s.signer).Claims(jwt.Claims{
		Issuer:   clientID,
		Subject:  clientID,
		Audience: jwt.Audience{audience},
		ID:       base64.RawURLEncoding.EncodeToString(jti),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(assertionLifetime)),
	}).Serialize()
}
