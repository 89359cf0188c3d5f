package aritma

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const environmentStoragePrefix = "environments/"

// Client authentication methods, named as in RFC 7591's token_endpoint_auth_method.
const (
	authClientSecretPost  = "client_secret_post"
	authClientSecretBasic = "client_secret_basic"
)

var authMethods = []string{authClientSecretPost, authClientSecretBasic}

const (
	defaultAssumedTokenLifetime = 5 * time.Minute
	maxAssumedTokenLifetime     = 24 * time.Hour
)

// environmentEntry is one authorization server.
type environmentEntry struct {
	TokenURL   string `json:"token_url"`
	AuthMethod string `json:"auth_method"`
	// CACert is a PEM bundle trusted instead of the system's roots.
	CACert string `json:"ca_cert,omitempty"`
	// RequestTimeout of zero means the config's request_timeout.
	RequestTimeout time.Duration `json:"request_timeout,omitempty"`
	// AssumedTokenLifetime applies to tokens whose expiry the response does
	// not tell (no expires_in, not a JWT with exp).
	AssumedTokenLifetime time.Duration `json:"assumed_token_lifetime"`
}

// builtinEnvironments exist from the start; writing one overrides it,
// deleting the override restores these values.
var builtinEnvironments = map[string]environmentEntry{
	"production": {
		TokenURL:             "https://id.aritma.io/connect/token",
		AuthMethod:           authClientSecretPost,
		AssumedTokenLifetime: defaultAssumedTokenLifetime,
	},
	"development": {
		TokenURL:             "https://id.dev.aritma.io/connect/token",
		AuthMethod:           authClientSecretPost,
		AssumedTokenLifetime: defaultAssumedTokenLifetime,
	},
}

// environmentHint lists where to look when an environment is missing.
const environmentHint = `list them with "vault list <mount>/environments" or create one at <mount>/environments/<name>`

// getEnvironment returns the stored environment, the built-in one of that
// name, or nil.
func getEnvironment(ctx context.Context, s logical.Storage, name string) (*environmentEntry, error) {
	entry, err := s.Get(ctx, environmentStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading environment %q: %w", name, err)
	}
	if entry == nil {
		if builtin, ok := builtinEnvironments[name]; ok {
			return &builtin, nil
		}
		return nil, nil
	}
	env := &environmentEntry{}
	if err := entry.DecodeJSON(env); err != nil {
		return nil, fmt.Errorf("decoding environment %q: %w", name, err)
	}
	return env, nil
}

func pathEnvironments(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: environmentStoragePrefix + "?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "environments",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentsList,
					Summary:  "List environments, the built-in ones included.",
				},
			},
			HelpSynopsis:    pathEnvironmentsListHelpSynopsis,
			HelpDescription: pathEnvironmentsListHelpDescription,
		},
		{
			Pattern: environmentStoragePrefix + framework.GenericNameRegex("name"),
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "environment",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: `Name of the environment; "production" and "development" are built in.`,
					Required:    true,
				},
				"token_url": {
					Type: framework.TypeString,
					Description: "Token endpoint of the authorization server, e.g. https://id.aritma.io/connect/token. " +
						"Must be https; http is allowed only for loopback addresses, for local development.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Token URL"},
				},
				"auth_method": {
					Type:          framework.TypeString,
					Description:   "How the client authenticates to the token endpoint: client_secret_post (credentials in the form body, as in Aritma's examples) or client_secret_basic (HTTP Basic).",
					Default:       authClientSecretPost,
					AllowedValues: []interface{}{authClientSecretPost, authClientSecretBasic},
				},
				"ca_cert": {
					Type:        framework.TypeString,
					Description: "PEM bundle of CA certificates to trust for the token endpoint instead of the system's roots, for private CAs. Empty: the system's roots.",
					DisplayAttrs: &framework.DisplayAttributes{
						Name:     "CA certificate",
						EditType: "textarea",
					},
				},
				"request_timeout": {
					Type:        framework.TypeDurationSecond,
					Description: "Time limit of one token request. 0: the config's request_timeout.",
				},
				"assumed_token_lifetime": {
					Type: framework.TypeDurationSecond,
					Description: "Lifetime assumed for tokens whose response has no expires_in and that are not JWTs with an exp claim " +
						"(RFC 6749 asks servers that omit expires_in to document a default; set it to that).",
					Default: int(defaultAssumedTokenLifetime.Seconds()),
				},
			},
			ExistenceCheck: b.environmentExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentRead,
					Summary:  "Read an environment.",
				},
				logical.CreateOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentWrite,
					Summary:  "Create an environment.",
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentWrite,
					Summary:  "Update an environment; fields not given keep their values.",
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentDelete,
					Summary:  "Delete an environment, or reset a built-in one to its defaults.",
				},
			},
			HelpSynopsis:    pathEnvironmentHelpSynopsis,
			HelpDescription: pathEnvironmentHelpDescription,
		},
	}
}

func (b *backend) environmentExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	env, err := getEnvironment(ctx, req.Storage, d.Get("name").(string))
	return env != nil, err
}

func (b *backend) pathEnvironmentsList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	stored, err := req.Storage.List(ctx, environmentStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing environments: %w", err)
	}
	names := make(map[string]bool, len(stored)+len(builtinEnvironments))
	for _, name := range stored {
		names[name] = true
	}
	for name := range builtinEnvironments {
		names[name] = true
	}
	keys := make([]string, 0, len(names))
	for name := range names {
		keys = append(keys, name)
	}
	sort.Strings(keys)
	return logical.ListResponse(keys), nil
}

func (b *backend) pathEnvironmentRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	env, err := getEnvironment(ctx, req.Storage, name)
	if err != nil || env == nil {
		return nil, err
	}
	_, builtin := builtinEnvironments[name]
	return &logical.Response{Data: map[string]interface{}{
		"token_url":              env.TokenURL,
		"auth_method":            env.AuthMethod,
		"ca_cert":                env.CACert,
		"request_timeout":        int64(env.RequestTimeout.Seconds()),
		"assumed_token_lifetime": int64(env.AssumedTokenLifetime.Seconds()),
		"builtin":                builtin,
	}}, nil
}

func (b *backend) pathEnvironmentWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	env, err := getEnvironment(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if env == nil {
		env = &environmentEntry{
			AuthMethod:           authClientSecretPost,
			AssumedTokenLifetime: defaultAssumedTokenLifetime,
		}
	}
	if v, ok := d.GetOk("token_url"); ok {
		env.TokenURL = strings.TrimSpace(v.(string))
	}
	if err := validateTokenURL(env.TokenURL); err != nil {
		return logical.ErrorResponse("token_url %v", err), nil
	}
	if v, ok := d.GetOk("auth_method"); ok {
		env.AuthMethod = v.(string)
		if !slices.Contains(authMethods, env.AuthMethod) {
			return logical.ErrorResponse("auth_method must be one of %s, got %q", strings.Join(authMethods, ", "), env.AuthMethod), nil
		}
	}
	if v, ok := d.GetOk("ca_cert"); ok {
		env.CACert = v.(string)
		if _, err := parseCACert(env.CACert); err != nil {
			return logical.ErrorResponse("ca_cert %v", err), nil
		}
	}
	if v, ok := d.GetOk("request_timeout"); ok {
		env.RequestTimeout = time.Duration(v.(int)) * time.Second
		if env.RequestTimeout != 0 {
			if err := validateDuration(env.RequestTimeout, minRequestTimeout, maxRequestTimeout); err != nil {
				return logical.ErrorResponse("request_timeout %v (or 0 for the config's request_timeout)", err), nil
			}
		}
	}
	if v, ok := d.GetOk("assumed_token_lifetime"); ok {
		env.AssumedTokenLifetime = time.Duration(v.(int)) * time.Second
		if err := validateDuration(env.AssumedTokenLifetime, time.Second, maxAssumedTokenLifetime); err != nil {
			return logical.ErrorResponse("assumed_token_lifetime %v", err), nil
		}
	}

	entry, err := logical.StorageEntryJSON(environmentStoragePrefix+name, env)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("writing environment %q: %w", name, err)
	}
	b.dropEnvironmentSources(name)
	return nil, nil
}

func (b *backend) pathEnvironmentDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	if _, builtin := builtinEnvironments[name]; !builtin {
		users, err := rolesUsingEnvironment(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			return logical.ErrorResponse("environment %q is used by roles %s; point them at another environment or delete them first",
				name, strings.Join(users, ", ")), nil
		}
		cfg, err := getConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		if cfg.DefaultEnvironment == name {
			return logical.ErrorResponse("environment %q is the config's default_environment; change that first", name), nil
		}
	}
	if err := req.Storage.Delete(ctx, environmentStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting environment %q: %w", name, err)
	}
	b.dropEnvironmentSources(name)
	return nil, nil
}

const pathEnvironmentsListHelpSynopsis = `List environments (authorization servers).`

const pathEnvironmentsListHelpDescription = `
Lists the environments that roles can use: the built-in "production"
(https://id.aritma.io/connect/token) and "development"
(https://id.dev.aritma.io/connect/token), and any written here.
`

const pathEnvironmentHelpSynopsis = `Manage environments: the authorization servers that issue tokens.`

const pathEnvironmentHelpDescription = `
An environment is an OAuth 2.0 authorization server: its token endpoint and
how clients authenticate to it. Roles name the environment they get tokens
from.

"production" (https://id.aritma.io/connect/token) and "development"
(https://id.dev.aritma.io/connect/token) exist from the start with
auth_method=client_secret_post, as in Aritma's documentation. Writing them
overrides fields; deleting them restores the defaults.

Other banks' authorization servers are added as environments of their own:

  vault write aritma/environments/otherbank \
      token_url=https://auth.otherbank.example/oauth2/token \
      auth_method=client_secret_basic

A custom environment cannot be deleted while roles use it. Changing an
environment drops the cached tokens of its roles.
`
