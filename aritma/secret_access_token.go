package aritma

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretAccessTokenType = "access_token"

// secretAccessToken is the leased secret that token/<role> returns.
//
// A shared token (the default) serves every reader of the role, so revoking
// one reader's lease leaves it alone: revoking it at the server would break
// the others. A per-lease token (token_per_lease) belongs to its lease alone
// and is revoked at the server's revocation endpoint with it.
func secretAccessToken(b *backend) *framework.Secret {
	return &framework.Secret{
		Type: secretAccessTokenType,
		Fields: map[string]*framework.FieldSchema{
			"access_token": {
				Type:         framework.TypeString,
				Description:  "Bearer access token.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
			"token_type": {
				Type:        framework.TypeString,
				Description: "Token type: Bearer.",
			},
			"expires_at": {
				Type:        framework.TypeString,
				Description: "When the token expires, RFC 3339.",
			},
			"scope": {
				Type:        framework.TypeString,
				Description: "Scopes granted, space-delimited.",
			},
		},
		Revoke: b.secretAccessTokenRevoke,
	}
}

// secretAccessTokenRevoke revokes a per-lease token at the server. It uses
// the role's current credentials: copying client secrets into every lease
// would spread them, so a token whose role was deleted or moved to another
// client is left to expire on its own (it lives no longer than its lease).
// A failed revocation is an error, which Vault retries.
func (b *backend) secretAccessTokenRevoke(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	internal := req.Secret.InternalData
	if perLease, _ := internal["per_lease"].(bool); !perLease {
		return nil, nil
	}
	role, _ := internal["role"].(string)
	token, _ := internal["access_token"].(string)
	clientID, _ := internal["client_id"].(string)
	expiresAt := time.Unix(int64(numberOf(internal["expires_at"])), 0)
	if !expiresAt.After(b.now()) {
		return nil, nil // expired: nothing left to revoke
	}

	src, errResp, err := b.tokenSource(ctx, req.Storage, role)
	if err != nil {
		return nil, err
	}
	if errResp != nil {
		b.Logger().Warn("per-lease token not revoked at the server; it expires on its own",
			"role", role, "reason", errResp.Error().Error(), "expires_at", expiresAt.Format(time.RFC3339))
		return nil, nil
	}
	switch {
	case src.grant.auth.clientID != clientID:
		b.Logger().Warn("per-lease token not revoked at the server: the role now uses another client; it expires on its own",
			"role", role, "expires_at", expiresAt.Format(time.RFC3339))
		return nil, nil
	case src.grant.revocationURL == "":
		b.Logger().Warn("per-lease token not revoked at the server: its environment has no revocation endpoint",
			"role", role, "environment", src.environment, "expires_at", expiresAt.Format(time.RFC3339))
		return nil, nil
	}
	if err := src.grant.revoke(ctx, token, "access_token", b.now); err != nil {
		return nil, fmt.Errorf("revoking role %q's token: %w", role, err)
	}
	b.Logger().Debug("per-lease token revoked", "role", role, "environment", src.environment)
	return nil, nil
}

// numberOf reads a number from InternalData, which arrives as float64 or
// json.Number after its round trip through Vault's storage.
func numberOf(v interface{}) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	case int:
		return float64(n)
	case interface{ Float64() (float64, error) }:
		f, _ := n.Float64()
		return f
	}
	return 0
}
