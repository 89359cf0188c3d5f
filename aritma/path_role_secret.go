package aritma

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// secretSwitch records when and why a role's next client secret became its
// client secret.
type secretSwitch struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// Why a next client secret took over.
const (
	switchRefused  = "the bank refused client_secret (invalid_client) and took next_client_secret"
	switchPromoted = "promoted"
)

func pathRoleSecret(b *backend) []*framework.Path {
	fields := map[string]*framework.FieldSchema{
		"name": {Type: framework.TypeString, Description: "Name of the role.", Required: true},
	}
	return []*framework.Path{
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/next-secret/promote",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "promote",
				OperationSuffix: "role-next-secret",
			},
			Fields: fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: writeOperation(b.pathNextSecretPromote, "Make next_client_secret the client secret now."),
			},
			HelpSynopsis:    "Make the role's next_client_secret its client_secret now.",
			HelpDescription: pathRoleSecretHelpDescription,
		},
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/next-secret",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role-next-secret",
			},
			Fields: fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: writeOperation(b.pathNextSecretDrop, "Drop next_client_secret; client_secret stays."),
			},
			HelpSynopsis:    "Drop the role's next_client_secret.",
			HelpDescription: pathRoleSecretHelpDescription,
		},
	}
}

func (b *backend) pathNextSecretPromote(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	resp, err := b.changeNextSecret(ctx, req.Storage, name, func(role *roleEntry) *logical.Response {
		if role.NextClientSecret == "" {
			return logical.ErrorResponse("role %q has no next_client_secret to promote; write one first", name)
		}
		role.promoteNextSecret(b.now(), switchPromoted)
		return nil
	})
	if err == nil && resp == nil {
		b.Logger().Info("client secret switched: next_client_secret promoted", "role", name)
	}
	return resp, err
}

func (b *backend) pathNextSecretDrop(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	return b.changeNextSecret(ctx, req.Storage, d.Get("name").(string), func(role *roleEntry) *logical.Response {
		role.NextClientSecret = ""
		return nil
	})
}

// changeNextSecret runs change on the stored role under the write lock and
// stores the result. Setting or dropping the next secret keeps the role's
// token (grantSettings leaves it out); a promoted secret gets a new one, as
// any change to client_secret does.
func (b *backend) changeNextSecret(ctx context.Context, s logical.Storage, name string, change func(*roleEntry) *logical.Response) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	role, err := getRole(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("role %q does not exist", name), nil
	}
	if resp := change(role); resp != nil {
		return resp, nil
	}
	if err := putRole(ctx, s, name, role); err != nil {
		return nil, err
	}
	b.dropRoleSource(name)
	return nil, nil
}

// storeSecretSwitch stores that the bank took the role's next secret: it
// becomes the client secret, unless the role was changed since the source
// that switched was built. It runs inside the grant that switched, without
// the reader's cancellation; the source keeps sending the next secret
// whatever happens here.
func (b *backend) storeSecretSwitch(ctx context.Context, name, current, next string) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	role, err := getRole(ctx, b.storage, name)
	if err == nil && role != nil && role.ClientSecret == current && role.NextClientSecret == next {
		role.promoteNextSecret(b.now(), switchRefused)
		// A performance secondary cannot write the role: its source keeps
		// the switch in memory, and the primary makes its own.
		err = putRole(ctx, b.storage, name, role)
	}
	if err != nil {
		b.Logger().Warn("client secret switch not stored; requests send next_client_secret until the role is written",
			"role", name, "error", err.Error())
	}
	// The source that switched stays: it sends the new client secret
	// already, and its token is good. Standbys rebuild theirs (invalidate).
}

// promoteNextSecret makes the next client secret the client secret, and
// records when and why.
func (r *roleEntry) promoteNextSecret(at time.Time, reason string) {
	r.ClientSecret, r.NextClientSecret = r.NextClientSecret, ""
	r.SecretSwitch = &secretSwitch{At: at.UTC(), Reason: reason}
}

const pathRoleSecretHelpDescription = `
Rotating a client secret without failed reads:

 1. Get the new secret from the bank, and write it as the role's
    next_client_secret. Reads keep using client_secret.
 2. When the bank stops taking client_secret, it answers invalid_client; the
    engine then tries next_client_secret in the same request, and when the
    bank takes it, next_client_secret becomes client_secret (the role's
    client_secret_switched_at and the log say so). No read fails.
 3. Or switch yourself: write to roles/<name>/next-secret/promote. Writing
    client_secret with the next secret's value promotes it too.

DELETE roles/<name>/next-secret drops the next secret.
`
