package aritma

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// kidPattern matches key IDs, base64url thumbprints: they may start with "-"
// or "_", which GenericNameRegex does not allow.
const kidPattern = "(?P<kid>[A-Za-z0-9_-]+)"

// jwksPathPattern is also listed as unauthenticated: the JWKS holds only
// public keys, and banks that take a jwks_uri fetch it themselves.
const jwksPathPattern = roleStoragePrefix + "+/jwks"

func pathRoleKeys(b *backend) []*framework.Path {
	nameField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the role.",
		Required:    true,
	}
	keyFields := map[string]*framework.FieldSchema{
		"name": nameField,
		"kid":  {Type: framework.TypeString, Description: "Key ID (kid) of the key.", Required: true},
	}
	return []*framework.Path{
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/keys/rotate",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "rotate",
				OperationSuffix: "role-key",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": nameField,
				"signing_algorithm": {
					Type:        framework.TypeString,
					Description: "Algorithm of the new key: RS256, PS256 or ES256. Default: the role's signing_algorithm.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: writeOperation(b.pathRoleKeyRotate, "Generate a new signing key in Vault: published at once, signing after the role's key_activation_delay."),
			},
			HelpSynopsis:    pathRoleKeyRotateHelpSynopsis,
			HelpDescription: pathRoleKeysHelpDescription,
		},
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/keys/" + kidPattern + "/promote",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationVerb:   "promote",
				OperationSuffix: "role-key",
			},
			Fields: keyFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: writeOperation(b.pathRoleKeyPromote, "Make a published key sign from now on, without waiting for its activation."),
			},
			HelpSynopsis:    pathRoleKeyPromoteHelpSynopsis,
			HelpDescription: pathRoleKeysHelpDescription,
		},
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/keys/" + kidPattern,
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role-key",
			},
			Fields: keyFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: writeOperation(b.pathRoleKeyDelete, "Remove a signing key that is not current from the role and its JWKS."),
			},
			HelpSynopsis:    pathRoleKeyDeleteHelpSynopsis,
			HelpDescription: pathRoleKeysHelpDescription,
		},
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/jwks",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role-jwks",
			},
			Fields: map[string]*framework.FieldSchema{"name": nameField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathRoleJWKSRead,
					Summary:  "The role's public keys as a JSON Web Key Set, to register at the bank (or give it as jwks_uri).",
				},
			},
			HelpSynopsis:    pathRoleJWKSHelpSynopsis,
			HelpDescription: pathRoleKeysHelpDescription,
		},
	}
}

// changeRoleKeys runs change on the stored role under the write lock and
// stores the role if change says so. A change to the keys alone keeps the
// role's cached token: the settings it was issued under are the same
// (grantSettings), and the rebuilt source takes it over.
func (b *backend) changeRoleKeys(ctx context.Context, req *logical.Request, name string,
	change func(role *roleEntry) (resp *logical.Response, store bool)) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	role, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse("role %q does not exist", name), nil
	}
	resp, store := change(role)
	if !store {
		return resp, nil
	}
	if err := putRole(ctx, req.Storage, name, role); err != nil {
		return nil, err
	}
	b.dropRoleSource(name)
	return resp, nil
}

func (b *backend) pathRoleKeyRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	return b.changeRoleKeys(ctx, req, name, func(role *roleEntry) (*logical.Response, bool) {
		alg := role.signingAlgorithm()
		if v, ok := d.GetOk("signing_algorithm"); ok {
			alg = v.(string)
		}
		key, err := generateSigningKey(alg, b.now())
		if err != nil {
			return logical.ErrorResponse("%v", err), false
		}
		role.addKey(*key)
		added := role.Keys[len(role.Keys)-1]
		return &logical.Response{Data: map[string]interface{}{
			"kid":          added.ID,
			"algorithm":    added.Algorithm,
			"activates_at": added.activation().Format(time.RFC3339),
			"jwks_path":    req.MountPoint + roleStoragePrefix + name + "/jwks",
		}}, true
	})
}

func (b *backend) pathRoleKeyPromote(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, kid := d.Get("name").(string), d.Get("kid").(string)
	return b.changeRoleKeys(ctx, req, name, func(role *roleEntry) (*logical.Response, bool) {
		i := slices.IndexFunc(role.Keys, func(k signingKey) bool { return k.ID == kid })
		if i < 0 {
			return logical.ErrorResponse("role %q has no key %s; its keys are listed by vault read %s%s%s",
				name, kid, req.MountPoint, roleStoragePrefix, name), false
		}
		now := b.now()
		if signingKeyAt(role.Keys, now) == i {
			return nil, false // current already
		}
		role.Keys[i].ActivatesAt = now.UTC()
		return nil, true
	})
}

func (b *backend) pathRoleKeyDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, kid := d.Get("name").(string), d.Get("kid").(string)
	return b.changeRoleKeys(ctx, req, name, func(role *roleEntry) (*logical.Response, bool) {
		if current := signingKeyAt(role.Keys, b.now()); current >= 0 && role.Keys[current].ID == kid {
			return logical.ErrorResponse("key %s is the role's current signing key; rotate first (vault write -f %s%s%s/keys/rotate)",
				kid, req.MountPoint, roleStoragePrefix, name), false
		}
		before := len(role.Keys)
		role.Keys = slices.DeleteFunc(role.Keys, func(k signingKey) bool { return k.ID == kid })
		// Already gone: delete is idempotent. A deleted pending key must
		// never sign, so the source is rebuilt.
		return nil, len(role.Keys) != before
	})
}

// pathRoleJWKSRead answers with the bare JWKS document (not Vault's JSON
// envelope), so that its URL can serve as the client's jwks_uri. Anyone may
// read it: a missing role answers exactly as a role without keys, so that
// the path does not tell which roles exist, and the keys' public halves are
// stored, so that no private key is parsed for an unauthenticated request.
func (b *backend) pathRoleJWKSRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	role, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	set := struct {
		Keys []json.RawMessage `json:"keys"`
	}{Keys: []json.RawMessage{}}
	if role != nil {
		for i := range role.Keys {
			jwk, err := role.Keys[i].publicJWK()
			if err != nil {
				return nil, fmt.Errorf("role %q key %s: %w", name, role.Keys[i].ID, err)
			}
			set.Keys = append(set.Keys, jwk)
		}
	}
	body, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: "application/jwk-set+json",
		logical.HTTPRawBody:     body,
	}}, nil
}

func putRole(ctx context.Context, s logical.Storage, name string, role *roleEntry) error {
	entry, err := logical.StorageEntryJSON(roleStoragePrefix+name, role)
	if err != nil {
		return err
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("writing role %q: %w", name, err)
	}
	return nil
}

const pathRoleKeyRotateHelpSynopsis = `Generate a new private_key_jwt signing key for the role.`

const pathRoleKeyPromoteHelpSynopsis = `Make a published signing key sign from now on.`

const pathRoleKeyDeleteHelpSynopsis = `Remove an old signing key from the role.`

const pathRoleJWKSHelpSynopsis = `The role's public signing keys, as a JSON Web Key Set.`

const pathRoleKeysHelpDescription = `
Roles with auth_method=private_key_jwt authenticate with a client assertion
(RFC 7523) signed by a private key that never leaves Vault. The key is
generated in Vault when the role is created (or imported with private_key).

  vault write -f aritma/roles/payments/keys/rotate       # new key, published
  vault write -f aritma/roles/payments/keys/<kid>/promote # sign with it now
  curl $VAULT_ADDR/v1/aritma/roles/payments/jwks          # public keys (JWKS)
  vault delete aritma/roles/payments/keys/<kid>           # drop a key

roles/<name>/jwks needs no Vault token: it holds public keys only, and a bank
that accepts a jwks_uri can fetch it from there. A role that does not exist
answers as one without keys.

Rotation is two-phase. The new key is published in the JWKS at once and
signs from its activates_at, the role's key_activation_delay (24h by default)
after the rotation, so that a bank that caches the JWKS has fetched it first;
promote makes it sign at once. Meanwhile the current key signs, and the
role's cached token keeps serving: a change to a role's keys never drops it.
Older keys stay in the JWKS, signing nothing, until deleted; the current key
cannot be deleted, a pending one can.
`
