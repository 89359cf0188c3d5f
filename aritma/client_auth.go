package aritma

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"golang.org/x/oauth2"
)

// Client authentication methods, named as in RFC 7591's
// token_endpoint_auth_method.
const (
	authClientSecretPost  = "client_secret_post"
	authClientSecretBasic = "client_secret_basic"
	authPrivateKeyJWT     = "private_key_jwt"
	authTLSClient         = "tls_client_auth"
	authSelfSignedTLS     = "self_signed_tls_client_auth"
)

var authMethods = []string{authClientSecretPost, authClientSecretBasic, authPrivateKeyJWT, authTLSClient, authSelfSignedTLS}

// authMethodValues is authMethods as a field's AllowedValues, "" first when
// the field may be left to the environment.
func authMethodValues(orEmpty bool) []interface{} {
	var values []interface{}
	if orEmpty {
		values = append(values, "")
	}
	for _, m := range authMethods {
		values = append(values, m)
	}
	return values
}

// withTLSClientFields adds the tls_client_cert and tls_client_key fields,
// which environments and roles share, to fields; certDescription says what
// the certificate is for where it is set.
func withTLSClientFields(fields map[string]*framework.FieldSchema, certDescription string) map[string]*framework.FieldSchema {
	fields["tls_client_cert"] = &framework.FieldSchema{
		Type:         framework.TypeString,
		Description:  certDescription,
		DisplayAttrs: &framework.DisplayAttributes{Name: "TLS client certificate", EditType: "textarea"},
	}
	fields["tls_client_key"] = &framework.FieldSchema{
		Type:         framework.TypeString,
		Description:  "PEM private key of tls_client_cert. Write-only.",
		DisplayAttrs: &framework.DisplayAttributes{Name: "TLS client key", Sensitive: true, EditType: "textarea"},
	}
	return fields
}

func usesClientSecret(method string) bool {
	return method == authClientSecretPost || method == authClientSecretBasic
}

func usesTLSClientCert(method string) bool {
	return method == authTLSClient || method == authSelfSignedTLS
}

// clientAssertionType is RFC 7523 section 2.2's client_assertion_type.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientAuth is how one role proves who it is to the authorization server,
// at the token endpoint and at the revocation endpoint alike.
type clientAuth struct {
	method       string
	clientID     string
	clientSecret string
	// nextSecret is the role's next_client_secret. usingNext is set once
	// the bank has refused clientSecret (invalid_client) and taken
	// nextSecret: from then on every request sends nextSecret.
	nextSecret string
	usingNext  atomic.Bool
	// keys and audience are for private_key_jwt. The audience is the same
	// at the token and the revocation endpoint: the environment's
	// assertion_audience, else the token endpoint, which is what servers
	// check (RFC 7523 section 3).
	keys     keySchedule
	audience string
}

// scrub removes the client secret from text the server chose (an error
// description), should a server echo it back.
func (a *clientAuth) scrub(text string) string {
	for _, secret := range []string{a.clientSecret, a.nextSecret} {
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "[redacted]")
		}
	}
	return text
}

// authStyle tells the oauth2 library where the credentials go. It is always
// explicit: left to auto-detect, the library tries one style and on any error
// silently retries with the other, doubling failed requests and hiding the
// first error.
func (a *clientAuth) authStyle() oauth2.AuthStyle {
	if a.method == authClientSecretBasic {
		return oauth2.AuthStyleInHeader
	}
	return oauth2.AuthStyleInParams
}

// secret is the client secret to send, if the method sends one: the
// current one, or the next one once the bank has switched to it.
func (a *clientAuth) secret() string {
	switch {
	case !usesClientSecret(a.method):
		return ""
	case a.usingNext.Load():
		return a.nextSecret
	}
	return a.clientSecret
}

// canSwitchFrom reports whether a request refused with secret may be tried
// again with the next secret.
func (a *clientAuth) canSwitchFrom(secret string) bool {
	return a.nextSecret != "" && secret == a.clientSecret && usesClientSecret(a.method)
}

// assertionParams adds a fresh client assertion, signed by the key active at
// now, for private_key_jwt; other methods add nothing.
func (a *clientAuth) assertionParams(params url.Values, now time.Time) error {
	if a.method != authPrivateKeyJWT {
		return nil
	}
	assertion, err := a.keys.at(now).assertion(a.clientID, a.audience, now)
	if err != nil {
		return fmt.Errorf("signing the client assertion: %w", err)
	}
	params.Set("client_assertion_type", clientAssertionType)
	params.Set("client_assertion", assertion)
	return nil
}

// authenticate adds the client's credentials to a form request (to the
// revocation endpoint; the token endpoint goes through the oauth2 library,
// which does the same). TLS methods authenticate in the handshake and send
// only client_id.
func (a *clientAuth) authenticate(req *http.Request, form url.Values, now time.Time) error {
	switch a.method {
	case authClientSecretBasic:
		// RFC 6749 section 2.3.1: form-encode, then Basic.
		req.SetBasicAuth(url.QueryEscape(a.clientID), url.QueryEscape(a.secret()))
		return nil
	case authClientSecretPost:
		form.Set("client_id", a.clientID)
		form.Set("client_secret", a.secret())
		return nil
	default:
		form.Set("client_id", a.clientID)
		return a.assertionParams(form, now)
	}
}

// tlsClientCert is a certificate and key for mutual TLS (RFC 8705).
type tlsClientCert struct {
	CertPEM string `json:"cert,omitempty"`
	KeyPEM  string `json:"key,omitempty"`
}

func (c tlsClientCert) isSet() bool { return c.CertPEM != "" }

// parse returns the pair, or nil when none is set.
func (c tlsClientCert) parse() (*tls.Certificate, error) {
	if !c.isSet() {
		return nil, nil
	}
	pair, _, err := parseTLSClientCert(c.CertPEM, c.KeyPEM)
	return pair, err
}

// parseTLSClientCert checks that the certificate and key belong together and
// returns the pair and the leaf's expiry.
func parseTLSClientCert(certPEM, keyPEM string) (*tls.Certificate, time.Time, error) {
	if certPEM == "" || keyPEM == "" {
		return nil, time.Time{}, errors.New("tls_client_cert and tls_client_key are both required")
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		// tls.X509KeyPair's messages name PEM types, never key bytes.
		return nil, time.Time{}, fmt.Errorf("tls_client_cert and tls_client_key do not make a key pair: %v", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("tls_client_cert does not parse: %v", err)
	}
	pair.Leaf = leaf
	return &pair, leaf.NotAfter, nil
}

// certExpiry reads the expiry of the first certificate in certPEM, for reads.
func certExpiry(certPEM string) string {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return ""
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return ""
	}
	return cert.NotAfter.UTC().Format(time.RFC3339)
}
