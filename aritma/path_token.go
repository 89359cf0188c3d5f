package aritma

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathToken(b *backend) *framework.Path {
	return &framework.Path{
		// A plain character class rather than GenericNameRegex, which
		// backtracks: it matches every role name (and more, which then
		// answers "does not exist"), and this is the hot path.
		Pattern: "token/(?P<name>[\\w.-]+)",
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
	if b.onPerformanceStandby() {
		return nil, logical.ErrReadOnly
	}
	// The name is the path's capture, a string the framework has checked
	// already; d.Get would parse it again.
	name, _ := d.Raw["name"].(string)
	want, errResp := readMinRemaining(d)
	if errResp != nil {
		return errResp, nil
	}

	src, errResp, err := b.tokenSource(ctx, req.Storage, name)
	if err != nil || errResp != nil {
		return errResp, err
	}
	out, err := src.token(ctx, want)
	if err != nil {
		return nil, err
	}
	tok := out.token
	src.stats.leases.Add(1)

	// The response is built as framework.Secret.Response would, but from
	// maps made once per token and per role: this is the hot path.
	return &logical.Response{
		Secret: &logical.Secret{
			LeaseOptions: logical.LeaseOptions{TTL: out.ttl, MaxTTL: out.ttl, Renewable: false},
			InternalData: src.leaseInternalData(tok),
		},
		Data:     tok.data,
		Warnings: out.warnings,
	}, nil
}

// readMinRemaining is a read's min_remaining parameter, 0 when not given.
func readMinRemaining(d *framework.FieldData) (time.Duration, *logical.Response) {
	v, ok := d.GetOk("min_remaining")
	if !ok {
		return 0, nil
	}
	want := time.Duration(v.(int)) * time.Second
	if err := validateDuration(want, 0, maxMinRemaining); err != nil {
		return 0, logical.ErrorResponse("min_remaining %v", err)
	}
	return want, nil
}

// leaseInternalData is what the lease keeps for its revocation: the role,
// and for a per-lease token the token itself and whom it was issued to.
// A shared token's leases all keep the same internal data, made once per
// role and never modified.
func (s *tokenSource) leaseInternalData(tok *accessToken) map[string]interface{} {
	if !s.perLease {
		return s.sharedLeaseData
	}
	return map[string]interface{}{
		"secret_type":  secretAccessTokenType,
		"role":         s.role,
		"per_lease":    true,
		"access_token": tok.value,
		"client_id":    s.grant.auth.clientID,
		"expires_at":   tok.expiresAt.Unix(),
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

The answer is a lease whose duration is what the token has left when the
answer is made, rounded down to whole seconds and never under a second,
capped by the mount's max_lease_ttl. A token's life counts from a second
before its request was sent, since servers date tokens in whole seconds.
Leases are not renewable: read again for a new token when one ends.

Tokens are cached in memory and shared by all readers of a role, as the
banks ask: "reuse the access token until it expires". The role's
min_remaining decides for how long: ` + minRemainingHelp + `
Concurrent reads of a role that needs a new token make one request to the
authorization server. Revoking a lease does not revoke the shared token.

min_remaining on the read asks for a token with at least that much life left;
one that the role's tokens cannot meet answers 400, after at most one grant
to learn what they live.

On a performance standby the read answers that storage is read-only, before
any request to the server, and Vault forwards it to the active node.

If the authorization server refuses, the error carries its HTTP status and
its error and error_description. If it fails while the cached token still has
min_remaining left, that token is returned with a warning.
`
