package aritma

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "roles/"

// roleEntry is one client's credentials for one environment.
type roleEntry struct {
	Environment  string            `json:"environment"`
	ClientID     string            `json:"client_id"`
	ClientSecret string            `json:"client_secret"`
	Scopes       []string          `json:"scopes,omitempty"`
	Audience     string            `json:"audience,omitempty"`
	Resources    []string          `json:"resources,omitempty"`
	TokenParams  map[string]string `json:"token_params,omitempty"`
	MinRemaining time.Duration     `json:"min_remaining"`
}

// getRole returns the stored role or nil.
func getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading role %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	role := &roleEntry{}
	if err := entry.DecodeJSON(role); err != nil {
		return nil, fmt.Errorf("decoding role %q: %w", name, err)
	}
	return role, nil
}

// rolesUsingEnvironment names the roles whose environment is env.
func rolesUsingEnvironment(ctx context.Context, s logical.Storage, env string) ([]string, error) {
	names, err := s.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	var users []string
	for _, name := range names {
		role, err := getRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if role != nil && role.Environment == env {
			users = append(users, name)
		}
	}
	return users, nil
}

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: roleStoragePrefix + "?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathRolesList,
					Summary:  "List roles.",
				},
			},
			HelpSynopsis:    pathRolesListHelpSynopsis,
			HelpDescription: pathRolesListHelpDescription,
		},
		{
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the role; applications read token/<name>.",
					Required:    true,
				},
				"environment": {
					Type:        framework.TypeString,
					Description: "Environment (authorization server) to get tokens from. Default: the config's default_environment.",
				},
				"client_id": {
					Type:         framework.TypeString,
					Description:  "Client ID issued by the bank. Required on create.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Client ID"},
				},
				"client_secret": {
					Type:        framework.TypeString,
					Description: "Client secret issued by the bank. Required on create. Write-only: reads show client_secret_set.",
					DisplayAttrs: &framework.DisplayAttributes{
						Name:      "Client secret",
						Sensitive: true,
					},
				},
				"scopes": {
					Type: framework.TypeCommaStringSlice,
					Description: "Scopes to request, e.g. api (Banking API), bankservice (Open Banking API) or IDENTITY. " +
						"Comma- or space-separated; sent space-delimited. Empty: the server's default scopes.",
				},
				"audience": {
					Type:        framework.TypeString,
					Description: "Value of the audience parameter, for servers that require one. Empty: not sent.",
				},
				"resource": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Resource indicators (RFC 8707): absolute URIs of the APIs the token is for, each sent as a resource parameter.",
				},
				"token_params": {
					Type: framework.TypeKVPairs,
					Description: "Extra form parameters for the token request, as key=value pairs. " +
						"They cannot replace the parameters the engine sends itself. Not secret: reads show them.",
				},
				"min_remaining": {
					Type: framework.TypeDurationSecond,
					Description: "How much life a cached token must have left to be handed out; a read after that " +
						"fetches a new one. Never less than a fifth and never more than half of the token's lifetime. " +
						"Default: the config's default_min_remaining (1m).",
				},
			},
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathRoleRead,
					Summary:  "Read a role. The client secret is never returned.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback: b.pathRoleWrite,
					Summary:  "Create a role.",
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathRoleWrite,
					Summary:  "Update a role; fields not given keep their values.",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathRoleDelete,
					Summary:  "Delete a role and drop its cached token.",
				},
			},
			HelpSynopsis:    pathRoleHelpSynopsis,
			HelpDescription: pathRoleHelpDescription,
		},
	}
}

func (b *backend) roleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := getRole(ctx, req.Storage, d.Get("name").(string))
	return role != nil, err
}

func (b *backend) pathRolesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, err := getRole(ctx, req.Storage, d.Get("name").(string))
	if err != nil || role == nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"environment":       role.Environment,
		"client_id":         role.ClientID,
		"client_secret_set": role.ClientSecret != "",
		"scopes":            nonNil(role.Scopes),
		"audience":          role.Audience,
		"resource":          nonNil(role.Resources),
		"token_params":      nonNilMap(role.TokenParams),
		"min_remaining":     int64(role.MinRemaining.Seconds()),
	}}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	role, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	creating := role == nil
	if creating {
		cfg, err := getConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		role = &roleEntry{
			Environment:  cfg.DefaultEnvironment,
			MinRemaining: cfg.DefaultMinRemaining,
		}
	}

	if v, ok := d.GetOk("environment"); ok {
		role.Environment = v.(string)
	}
	env, err := getEnvironment(ctx, req.Storage, role.Environment)
	if err != nil {
		return nil, err
	}
	if env == nil {
		return logical.ErrorResponse("environment: %q does not exist; %s", role.Environment, environmentHint), nil
	}

	if v, ok := d.GetOk("client_id"); ok {
		role.ClientID = v.(string)
	}
	if err := validateClientID(role.ClientID); err != nil {
		return logical.ErrorResponse("client_id %v", err), nil
	}
	if v, ok := d.GetOk("client_secret"); ok {
		role.ClientSecret = v.(string)
	}
	if err := validateClientSecret(role.ClientSecret); err != nil {
		return logical.ErrorResponse("client_secret %v", err), nil
	}
	if v, ok := d.GetOk("scopes"); ok {
		if role.Scopes, err = normalizeScopes(v.([]string)); err != nil {
			return logical.ErrorResponse("scopes: %v", err), nil
		}
	}
	if v, ok := d.GetOk("audience"); ok {
		role.Audience = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("resource"); ok {
		role.Resources = v.([]string)
		if err := validateResources(role.Resources); err != nil {
			return logical.ErrorResponse("resource: %v", err), nil
		}
	}
	if v, ok := d.GetOk("token_params"); ok {
		role.TokenParams = v.(map[string]string)
		if err := validateTokenParams(role.TokenParams); err != nil {
			return logical.ErrorResponse("token_params %v", err), nil
		}
	}
	if v, ok := d.GetOk("min_remaining"); ok {
		role.MinRemaining = time.Duration(v.(int)) * time.Second
		if err := validateDuration(role.MinRemaining, 0, maxMinRemaining); err != nil {
			return logical.ErrorResponse("min_remaining %v", err), nil
		}
	}

	entry, err := logical.StorageEntryJSON(roleStoragePrefix+name, role)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("writing role %q: %w", name, err)
	}
	b.dropRoleSource(name)
	return nil, nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	if err := req.Storage.Delete(ctx, roleStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role %q: %w", name, err)
	}
	b.dropRoleSource(name)
	return nil, nil
}

// nonNilMap makes empty maps read as {} rather than null.
func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// nonNil makes empty lists read as [] rather than null.
func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

const pathRolesListHelpSynopsis = `List roles.`

const pathRolesListHelpDescription = `Lists the names of the roles; read token/<name> to get a role's access token.`

const pathRoleHelpSynopsis = `Manage roles: one client's credentials and scopes for one environment.`

const pathRoleHelpDescription = `
A role holds the client ID and secret that a bank issued to one API client,
the environment (authorization server) they belong to, and the scopes to
request. Applications read token/<role> and get an access token; they never
see the client secret.

  vault write aritma/roles/payments environment=development \
      client_id=my-client client_secret=s3cret scopes=bankservice

client_secret is write-only: reads show client_secret_set=true. Updates
change only the fields given. Any change, and deleting the role, drops the
role's cached token, so the next read uses the new settings.

min_remaining is how much life a cached token must have left to be handed
out; it is never less than a fifth of the token's lifetime (so that Vault
Agent, which re-reads at 85-95% of a lease, always gets a new token) and
never more than half of it (so that the token is always shared).
`
