package aritma

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// serverMetadata is what discovery learns about an authorization server
// (RFC 8414, OpenID Connect Discovery 1.0), kept with the environment.
type serverMetadata struct {
	TokenEndpoint      string   `json:"token_endpoint"`
	RevocationEndpoint string   `json:"revocation_endpoint,omitempty"`
	AuthMethods        []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	// The mTLS aliases (RFC 8705 section 5) are used with TLS client
	// authentication when the server lists them.
	MTLSTokenEndpoint      string `json:"mtls_token_endpoint,omitempty"`
	MTLSRevocationEndpoint string `json:"mtls_revocation_endpoint,omitempty"`
	// For the user-consent grants.
	AuthorizationEndpoint string   `json:"authorization_endpoint,omitempty"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported,omitempty"`
	GrantTypes            []string `json:"grant_types_supported,omitempty"`
	// IssInAuthResponse: the server puts iss in authorization responses
	// (RFC 9207), so one without it is refused.
	IssInAuthResponse bool      `json:"authorization_response_iss_parameter_supported,omitempty"`
	FetchedAt         time.Time `json:"fetched_at"`
}

// validateIssuer checks an issuer identifier: a URL like token_url's, without
// query or fragment (RFC 8414 section 2).
func validateIssuer(issuer string) error {
	if err := validateTokenURL(issuer); err != nil {
		return err
	}
	if u, _ := url.Parse(issuer); u.RawQuery != "" {
		return errors.New("must not contain a query (RFC 8414 section 2)")
	}
	return nil
}

// metadataURLs are where an issuer's metadata may be: OpenID Connect's
// location (issuer + /.well-known/openid-configuration), then RFC 8414's
// (the well-known segment between host and path).
func metadataURLs(issuer string) []string {
	u, _ := url.Parse(issuer)
	path := strings.TrimSuffix(u.Path, "/")
	oidc := *u
	oidc.Path = path + "/.well-known/openid-configuration"
	oauth := *u
	oauth.Path = "/.well-known/oauth-authorization-server" + path
	return []string{oidc.String(), oauth.String()}
}

// discover fetches an issuer's metadata and checks that it names the same
// issuer (a server must not speak for another) and a usable token endpoint.
func discover(ctx context.Context, client *http.Client, issuer string, now time.Time) (*serverMetadata, error) {
	var lastErr error
	for _, location := range metadataURLs(issuer) {
		raw, err := fetchMetadata(ctx, client, location)
		if errors.Is(err, errNotFound) {
			lastErr = err
			continue
		}
		if err != nil {
			return nil, err
		}
		return parseMetadata(raw, issuer, location, now)
	}
	return nil, fmt.Errorf("no metadata for issuer %s: %v", issuer, lastErr)
}

var errNotFound = errors.New("not found")

func fetchMetadata(ctx context.Context, client *http.Client, location string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %v", location, stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%s answered 404: %w", location, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", location, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}

func parseMetadata(raw []byte, issuer, location string, now time.Time) (*serverMetadata, error) {
	var doc struct {
		Issuer             string   `json:"issuer"`
		TokenEndpoint      string   `json:"token_endpoint"`
		RevocationEndpoint string   `json:"revocation_endpoint"`
		AuthMethods        []string `json:"token_endpoint_auth_methods_supported"`
		Authorization      string   `json:"authorization_endpoint"`
		CodeChallenge      []string `json:"code_challenge_methods_supported"`
		GrantTypes         []string `json:"grant_types_supported"`
		IssInAuthResponse  bool     `json:"authorization_response_iss_parameter_supported"`
		MTLSAliases        struct {
			TokenEndpoint      string `json:"token_endpoint"`
			RevocationEndpoint string `json:"revocation_endpoint"`
		} `json:"mtls_endpoint_aliases"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s is not JSON metadata: %v", location, err)
	}
	if doc.Issuer != issuer {
		return nil, fmt.Errorf("%s names issuer %q, not %q; the issuer must match exactly (RFC 8414 section 3.3)", location, doc.Issuer, issuer)
	}
	md := &serverMetadata{
		TokenEndpoint:          doc.TokenEndpoint,
		RevocationEndpoint:     doc.RevocationEndpoint,
		AuthMethods:            doc.AuthMethods,
		MTLSTokenEndpoint:      doc.MTLSAliases.TokenEndpoint,
		MTLSRevocationEndpoint: doc.MTLSAliases.RevocationEndpoint,
		AuthorizationEndpoint:  doc.Authorization,
		CodeChallengeMethods:   doc.CodeChallenge,
		GrantTypes:             doc.GrantTypes,
		IssInAuthResponse:      doc.IssInAuthResponse,
		FetchedAt:              now.UTC(),
	}
	for name, endpoint := range map[string]string{
		"token_endpoint":                            md.TokenEndpoint,
		"revocation_endpoint":                       md.RevocationEndpoint,
		"mtls_endpoint_aliases.token_endpoint":      md.MTLSTokenEndpoint,
		"mtls_endpoint_aliases.revocation_endpoint": md.MTLSRevocationEndpoint,
		"authorization_endpoint":                    md.AuthorizationEndpoint,
	} {
		if endpoint == "" && name != "token_endpoint" {
			continue
		}
		if err := validateTokenURL(endpoint); err != nil {
			return nil, fmt.Errorf("%s: %s %v", location, name, err)
		}
		if isPlainHTTP(endpoint) && !isPlainHTTP(issuer) {
			return nil, fmt.Errorf("%s: %s %s is http; an https issuer's endpoints must be https too "+
				"(http is allowed only when the issuer itself is a loopback http URL)", location, name, endpoint)
		}
	}
	return md, nil
}
