package aritma

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Pure validators for user input. Each returns an error that names what is
// allowed; callers prefix the field name.

// validateTokenURL accepts an absolute https URL, or http for loopback hosts
// (a local authorization server during development). Credentials in the URL
// are refused: they would be sent to the server and could end up in logs.
func validateTokenURL(raw string) error {
	if raw == "" {
		return errors.New("is required: the authorization server's token endpoint, e.g. https://id.aritma.io/connect/token")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a valid URL: %v", stripURL(err))
	}
	if u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("must be an absolute URL such as https://id.aritma.io/connect/token, got %q", raw)
	}
	if u.User != nil {
		return errors.New("must not contain a user name or password; put the client's credentials in the role")
	}
	if u.Fragment != "" {
		return errors.New("must not contain a fragment (#...)")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("must use https; http is allowed only for loopback addresses (localhost, 127.0.0.1, ::1), got host %q", u.Hostname())
	default:
		return fmt.Errorf("must use https, got scheme %q", u.Scheme)
	}
}

// isPlainHTTP reports whether raw is an http (not https) URL. Such
// endpoints pass validateTokenURL only on loopback addresses, and never go
// through a proxy (newHTTPClient) or come from a remote issuer's metadata.
func isPlainHTTP(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && strings.EqualFold(u.Scheme, "http")
}

// stripURL drops the URL from a *url.Error so messages do not repeat it.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// normalizeScopes splits entries on whitespace (so "api bankservice" and
// "api,bankservice" both work) and checks each against RFC 6749 §3.3:
// scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Duplicates are dropped, order kept.
func normalizeScopes(entries []string) ([]string, error) {
	var scopes []string
	seen := make(map[string]bool)
	for _, entry := range entries {
		for _, scope := range strings.Fields(entry) {
			for _, r := range scope {
				if r < 0x21 || r == '"' || r == '\\' || r > 0x7e {
					return nil, fmt.Errorf("%q is not a valid scope: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 section 3.3)", scope)
				}
			}
			if !seen[scope] {
				seen[scope] = true
				scopes = append(scopes, scope)
			}
		}
	}
	return scopes, nil
}

// validateClientID checks a client identifier: non-empty, printable
// (RFC 6749 appendix A.1 allows %x20-7E; banks also use UUIDs and e-mail-like ids).
func validateClientID(id string) error {
	if id == "" {
		return errors.New("is required: the client ID the bank issued")
	}
	if len(id) > 1024 {
		return errors.New("is longer than 1024 bytes")
	}
	if strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return errors.New("must not contain control characters")
	}
	return nil
}

// validateClientSecret never quotes the secret back.
func validateClientSecret(secret string) error {
	if secret == "" {
		return errors.New("is required: the client secret the bank issued")
	}
	if len(secret) > 4096 {
		return errors.New("is longer than 4096 bytes")
	}
	return nil
}

// validateDuration checks that d lies in [lo, hi].
func validateDuration(d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("must be between %s and %s, got %s", lo, hi, d)
	}
	return nil
}

// parseCACert checks that pemData holds at least one certificate and only
// certificates; an empty string means "use the system's roots".
func parseCACert(pemData string) (*x509.CertPool, error) {
	if strings.TrimSpace(pemData) == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	rest := []byte(pemData)
	count := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a %q PEM block; only CERTIFICATE blocks are allowed", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("holds a certificate that does not parse: %v", err)
		}
		pool.AddCert(cert)
		count++
	}
	if count == 0 {
		return nil, errors.New("holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return nil, errors.New("has text after the last PEM certificate")
	}
	return pool, nil
}

// reservedTokenParams are form parameters that the engine sets itself; a role's
// extra parameters may not override them.
var reservedTokenParams = map[string]bool{
	"grant_type":            true,
	"scope":                 true,
	"client_id":             true,
	"client_secret":         true,
	"client_assertion":      true,
	"client_assertion_type": true,
	"audience":              true,
	"resource":              true,
}

func validateTokenParams(params map[string]string) error {
	return validateExtraParams(params, reservedTokenParams)
}

// validateExtraParams checks a role's extra request parameters: named, and
// none of those the engine sends itself.
func validateExtraParams(params map[string]string, reserved map[string]bool) error {
	for key := range params {
		if key == "" {
			return errors.New("has an empty parameter name")
		}
		if reserved[key] {
			return fmt.Errorf("may not set %q: the engine sends it (use the role's own field where there is one)", key)
		}
	}
	return nil
}

// validateResources checks RFC 8707 resource indicators: absolute URIs
// without a fragment.
func validateResources(resources []string) error {
	for _, r := range resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() {
			return fmt.Errorf("%q is not an absolute URI (RFC 8707 section 2)", r)
		}
		if u.Fragment != "" {
			return fmt.Errorf("%q must not contain a fragment (RFC 8707 section 2)", r)
		}
	}
	return nil
}

// validateProxyURL accepts an http, https or socks5 proxy URL; empty means
// the proxy variables of Vault's environment.
func validateProxyURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a valid URL: %v", stripURL(err))
	}
	switch u.Scheme {
	case "http", "https", "socks5":
	default:
		return fmt.Errorf("must use http, https or socks5, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("must name a host, e.g. http://proxy.internal:3128")
	}
	return nil
}

// redactedURL hides the password in a URL, for reads.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return raw
	}
	return u.Redacted()
}

// validateGrantTypes checks allowed_grant_types and drops repeats; implicit
// is refused with the reason.
func validateGrantTypes(grants []string) ([]string, error) {
	var out []string
	for _, g := range grants {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			continue
		case g == grantImplicit:
			return nil, errors.New(implicitRefusal)
		case !slices.Contains(grantTypes, g):
			return nil, fmt.Errorf("%q is not one of %s", g, strings.Join(grantTypes, ", "))
		case !slices.Contains(out, g):
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("must name at least one of %s", strings.Join(grantTypes, ", "))
	}
	return out, nil
}

// validateRedirectURI checks a redirect URI as RFC 6749 section 3.1.2 has
// it: absolute, no fragment; https, or http on a loopback address.
func validateRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("is not an absolute URI")
	}
	if u.Fragment != "" {
		return errors.New("must not contain a fragment (RFC 6749 section 3.1.2)")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return errors.New("must be https (http only on a loopback address)")
	}
	return nil
}

// reservedAuthorizationParams are the authorization request's parameters
// that the engine sets itself.
var reservedAuthorizationParams = map[string]bool{
	"response_type": true, "client_id": true, "redirect_uri": true, "scope": true, "state": true,
	"code_challenge": true, "code_challenge_method": true,
}

func validateAuthorizationParams(params map[string]string) error {
	return validateExtraParams(params, reservedAuthorizationParams)
}
