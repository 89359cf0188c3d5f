package aritma

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretAccessTokenType = "access_token"

// secretAccessToken is the leased secret that token/<role> returns. The
// token is shared by every reader of the role, so revoking one reader's lease
// leaves the token alone: revoking it at the server would break the others.
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

func (b *backend) secretAccessTokenRevoke(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return nil, nil
}
