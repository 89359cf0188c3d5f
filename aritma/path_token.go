package aritma

import (
	"context"
	"net/url"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func pathToken(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "token/" + framework.GenericNameRegex("name"),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
			OperationVerb:   "generate",
			OperationSuffix: "token",
		},
		Fields: map[string]*framework.FieldSchema{
			"name": {
				Type:        framework.TypeString,
				Description: "Name of the role.",
				Required:    true,
			},
			"min_remaining": {
				Type: framework.TypeDurationSecond,
				Description: "Ask for a token with at least this much life left: the cached one if it has it, " +
					"otherwise a new one. Fails if the server issues shorter-lived tokens.",
				Query: true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathTokenRead,
				Summary:  "Get an access token for the role, as a lease that lasts as long as the token.",
			},
		},
		HelpSynopsis:    pathTokenHelpSynopsis,
		HelpDescription: pathTokenHelpDescription,
	}
}

func (b *backend) pathTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	var want time.Duration
	if v, ok := d.GetOk("min_remaining"); ok {
		want = time.Duration(v.(int)) * time.Second
		if err := validateDuration(want, 0, maxMinRemaining); err != nil {
			return logical.ErrorResponse("min_remaining %v", err), nil
		}
	}

	src, errResp, err := b.tokenSource(ctx, req.Storage, name)
	if err != nil || errResp != nil {
		return errResp, err
	}
	tok, fresh, warnings, err := src.token(ctx, want)
	if err != nil {
		return nil, err
	}

	// A new token's lease is exactly its expires_in; a cached one's is what
	// it has left, rounded down, so the lease never outlives the token.
	// Vault shortens it further to the mount's max_lease_ttl.
	ttl := tok.expiresAt.Sub(b.now())
	if fresh {
		ttl = tok.lifetime()
	}
	ttl = ttl.Truncate(time.Second)

	resp := b.Secret(secretAccessTokenType).Response(map[string]interface{}{
		"access_token": tok.value,
		"token_type":   tok.tokenType,
		"expires_at":   tok.expiresAt.UTC().Format(time.RFC3339),
		"scope":        tok.scope,
	}, map[string]interface{}{
		"role": name,
	})
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = ttl
	resp.Secret.Renewable = false
	resp.Warnings = warnings
	return resp, nil
}

// tokenSource returns the role's cached token source, building it from
// storage on the role's first read after a start or a change. A missing role
// or environment is the reader's error response.
func (b *backend) tokenSource(ctx context.Context, s logical.Storage, name string) (*tokenSource, *logical.Response, error) {
	src, generation := b.cachedSource(name)
	if src != nil {
		return src, nil, nil
	}

	role, err := getRole(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if role == nil {
		return nil, logical.ErrorResponse("role %q does not exist", name), nil
	}
	env, err := getEnvironment(ctx, s, role.Environment)
	if err != nil {
		return nil, nil, err
	}
	if env == nil {
		return nil, logical.ErrorResponse("role %q uses environment %q, which does not exist; %s",
			name, role.Environment, environmentHint), nil
	}
	cfg, err := getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}

	timeout := env.RequestTimeout
	if timeout == 0 {
		timeout = cfg.RequestTimeout
	}
	httpClient := b.cachedHTTPClient(role.Environment)
	if httpClient == nil {
		if httpClient, err = newHTTPClient(env, timeout); err != nil {
			return nil, logical.ErrorResponse("environment %q: %v", role.Environment, err), nil
		}
	}

	src = &tokenSource{
		role:        name,
		environment: role.Environment,
		grant: &grantClient{
			config:          grantConfig(role, env),
			httpClient:      httpClient,
			timeout:         timeout,
			assumedLifetime: env.AssumedTokenLifetime,
		},
		minRemaining: role.MinRemaining,
		secret:       role.ClientSecret,
		now:          b.now,
		logger:       b.Logger(),
	}
	return b.storeSource(name, src, generation), nil, nil
}

// grantConfig is the client_credentials request for a role. The auth style is
// always explicit: left to auto-detect, the library tries one style, and on
// any error silently retries with the other, doubling failed requests and
// hiding the first error.
func grantConfig(role *roleEntry, env *environmentEntry) *clientcredentials.Config {
	params := url.Values{}
	for k, v := range role.TokenParams {
		params.Set(k, v)
	}
	if role.Audience != "" {
		params.Set("audience", role.Audience)
	}
	for _, r := range role.Resources {
		params.Add("resource", r)
	}
	style := oauth2.AuthStyleInParams
	if env.AuthMethod == authClientSecretBasic {
		style = oauth2.AuthStyleInHeader
	}
	return &clientcredentials.Config{
		ClientID:       role.ClientID,
		ClientSecret:   role.ClientSecret,
		TokenURL:       env.TokenURL,
		Scopes:         role.Scopes,
		EndpointParams: params,
		AuthStyle:      style,
	}
}

const pathTokenHelpSynopsis = `Get the role's access token, leased for as long as the token lives.`

const pathTokenHelpDescription = `
Reading token/<role> returns a Bearer access token from the OAuth 2.0
client_credentials grant, using the role's client credentials at its
environment's token endpoint:

  access_token   the token, for "Authorization: Bearer <access_token>"
  token_type     Bearer
  expires_at     when the token expires (RFC 3339)
  scope          the scopes granted, space-delimited

The answer is a lease whose duration is the token's remaining lifetime
(exactly expires_in for a new token), capped by the mount's max_lease_ttl.
Leases are not renewable: read again for a new token when one ends.

Tokens are cached in memory and shared by all readers of a role until less
than the role's min_remaining is left (and at least until a fifth of the
lifetime is left), as the banks ask: "reuse the access token until it
expires". Concurrent reads of a role that needs a new token make one request
to the authorization server. Revoking a lease does not revoke the shared
token.

min_remaining on the read asks for a token with at least that much life left.

If the authorization server refuses, the error carries its HTTP status and
its error and error_description. If it fails while the cached token still has
min_remaining left, that token is returned with a warning.
`
