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

const (
	defaultAssumedTokenLifetime = 5 * time.Minute
	maxAssumedTokenLifetime     = 24 * time.Hour
)

// environmentEntry is one authorization server.
type environmentEntry struct {
	// TokenURL is set by the user, or empty when Issuer is, and then the
	// token endpoint comes from the discovered Metadata.
	TokenURL      string `json:"token_url,omitempty"`
	Issuer        string `json:"issuer,omitempty"`
	RevocationURL string `json:"revocation_url,omitempty"`
	// AuthorizationURL is where customers consent (authorization_code);
	// empty: the discovered authorization_endpoint.
	AuthorizationURL string `json:"authorization_url,omitempty"`
	AuthMethod       string `json:"auth_method"`
	// AssertionAudience is the aud of private_key_jwt assertions; empty
	// means the URL of the endpoint the assertion is sent to.
	AssertionAudience string `json:"assertion_audience,omitempty"`
	// CACert is a PEM bundle trusted instead of the system's roots.
	CACert    string        `json:"ca_cert,omitempty"`
	TLSClient tlsClientCert `json:"tls_client,omitempty"`
	ProxyURL  string        `json:"proxy_url,omitempty"`
	// RequestTimeout of zero means the config's request_timeout.
	RequestTimeout time.Duration `json:"request_timeout,omitempty"`
	// AssumedTokenLifetime applies to tokens whose expiry the response does
	// not tell (no expires_in, not a JWT with exp).
	AssumedTokenLifetime time.Duration   `json:"assumed_token_lifetime"`
	Metadata             *serverMetadata `json:"metadata,omitempty"`
}

// tokenEndpoint is where method's token requests go: the mTLS alias for TLS
// client authentication when the server has one.
func (e *environmentEntry) tokenEndpoint(method string) string {
	if e.Metadata == nil {
		return e.TokenURL
	}
	if usesTLSClientCert(method) && e.Metadata.MTLSTokenEndpoint != "" {
		return e.Metadata.MTLSTokenEndpoint
	}
	return e.Metadata.TokenEndpoint
}

// revocationEndpoint is where method's revocations go; "" if none is known.
func (e *environmentEntry) revocationEndpoint(method string) string {
	if e.RevocationURL != "" || e.Metadata == nil {
		return e.RevocationURL
	}
	if usesTLSClientCert(method) && e.Metadata.MTLSRevocationEndpoint != "" {
		return e.Metadata.MTLSRevocationEndpoint
	}
	return e.Metadata.RevocationEndpoint
}

// authorizationEndpoint is where customers are sent to consent; "" if none
// is known.
func (e *environmentEntry) authorizationEndpoint() string {
	if e.AuthorizationURL != "" || e.Metadata == nil {
		return e.AuthorizationURL
	}
	return e.Metadata.AuthorizationEndpoint
}

// checkAuthMethod refuses a method the discovered server does not list.
func (e *environmentEntry) checkAuthMethod(method string) error {
	if e.Metadata == nil || len(e.Metadata.AuthMethods) == 0 || slices.Contains(e.Metadata.AuthMethods, method) {
		return nil
	}
	return fmt.Errorf("the authorization server at %s does not support %s; its metadata lists %s",
		e.Issuer, method, strings.Join(e.Metadata.AuthMethods, ", "))
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
			Fields: withTLSClientFields(map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: `Name of the environment; "production" and "development" are built in.`,
					Required:    true,
				},
				"token_url": {
					Type: framework.TypeString,
					Description: "Token endpoint of the authorization server, e.g. https://id.aritma.io/connect/token. " +
						"Must be https; http is allowed only for loopback addresses, for local development. Set this or issuer.",
					DisplayAttrs: &framework.DisplayAttributes{Name: "Token URL"},
				},
				"issuer": {
					Type: framework.TypeString,
					Description: "Issuer identifier of the authorization server, instead of token_url: the engine reads its " +
						"metadata (/.well-known/openid-configuration or /.well-known/oauth-authorization-server) on every write " +
						"of the environment, checks that it names this issuer, and takes the token and revocation endpoints and " +
						"the supported client authentication methods from it.",
				},
				"revocation_url": {
					Type:        framework.TypeString,
					Description: "Revocation endpoint (RFC 7009), for roles with token_per_lease. Default: the issuer's, if discovered.",
				},
				"authorization_url": {
					Type: framework.TypeString,
					Description: "Authorization endpoint, where a bank customer logs in and consents (authorization_code). " +
						"Default: the issuer's, if discovered.",
				},
				"auth_method": {
					Type: framework.TypeString,
					Description: "How clients authenticate, unless a role says otherwise: client_secret_post (credentials in the " +
						"form body, as in Aritma's examples), client_secret_basic (HTTP Basic), private_key_jwt (a signed " +
						"assertion, RFC 7523), tls_client_auth or self_signed_tls_client_auth (mutual TLS, RFC 8705).",
					Default:       authClientSecretPost,
					AllowedValues: authMethodValues(false),
				},
				"assertion_audience": {
					Type:        framework.TypeString,
					Description: "aud claim of private_key_jwt assertions (at the token and revocation endpoints alike), for servers that want their issuer there. Default: the token endpoint.",
				},
				"proxy_url": {
					Type:        framework.TypeString,
					Description: "HTTP proxy for requests to this server (http://, https:// or socks5://). Empty: the HTTPS_PROXY, HTTP_PROXY and NO_PROXY variables of Vault's environment. Reads hide a password in it.",
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
			}, "PEM client certificate (and chain) for mutual TLS, for roles that have none of their own."),
			ExistenceCheck: b.environmentExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathEnvironmentRead,
					Summary:  "Read an environment.",
				},
				logical.CreateOperation: writeOperation(b.pathEnvironmentWrite, "Create an environment."),
				logical.UpdateOperation: writeOperation(b.pathEnvironmentWrite, "Update an environment; fields not given keep their values."),
				logical.DeleteOperation: writeOperation(b.pathEnvironmentDelete, "Delete an environment, or reset a built-in one to its defaults."),
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
	data := map[string]interface{}{
		"token_url":              env.TokenURL,
		"issuer":                 env.Issuer,
		"revocation_url":         env.RevocationURL,
		"authorization_url":      env.AuthorizationURL,
		"auth_method":            env.AuthMethod,
		"assertion_audience":     env.AssertionAudience,
		"ca_cert":                env.CACert,
		"tls_client_cert":        env.TLSClient.CertPEM,
		"tls_client_key_set":     env.TLSClient.KeyPEM != "",
		"proxy_url":              redactedURL(env.ProxyURL),
		"request_timeout":        int64(env.RequestTimeout.Seconds()),
		"assumed_token_lifetime": int64(env.AssumedTokenLifetime.Seconds()),
		"builtin":                builtin,
	}
	if env.TLSClient.isSet() {
		data["tls_client_cert_expires_at"] = certExpiry(env.TLSClient.CertPEM)
	}
	if md := env.Metadata; md != nil {
		data["token_url"] = md.TokenEndpoint
		data["discovered"] = map[string]interface{}{
			"token_endpoint":                        md.TokenEndpoint,
			"revocation_endpoint":                   md.RevocationEndpoint,
			"token_endpoint_auth_methods_supported": nonNil(md.AuthMethods),
			"mtls_token_endpoint":                   md.MTLSTokenEndpoint,
			"authorization_endpoint":                md.AuthorizationEndpoint,
			"code_challenge_methods_supported":      nonNil(md.CodeChallengeMethods),
			"grant_types_supported":                 nonNil(md.GrantTypes),
			"fetched_at":                            md.FetchedAt.Format(time.RFC3339),
		}
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathEnvironmentWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	// Discovery is a network call: it runs before writeMu is taken, so that
	// a slow issuer holds up no other write.
	env, resp, err := environmentFromRequest(ctx, req.Storage, name, d)
	if err != nil || resp != nil {
		return resp, err
	}
	var metadata *serverMetadata
	if env.Issuer != "" {
		cfg, err := getConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		if metadata, err = b.discoverEnvironment(ctx, env, cfg); err != nil {
			return logical.ErrorResponse("issuer: %v", err), nil
		}
	}

	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	// Another write may have landed meanwhile: apply this one to what is
	// stored now, and use the metadata only if it was fetched the same way.
	discovered := env
	if env, resp, err = environmentFromRequest(ctx, req.Storage, name, d); err != nil || resp != nil {
		return resp, err
	}
	env.Metadata = nil
	if env.Issuer != "" {
		if env.discoveryInputs() != discovered.discoveryInputs() {
			return logical.ErrorResponse("environment %q changed while its issuer was being read; write it again", name), nil
		}
		env.Metadata = metadata
		if err := env.checkAuthMethod(env.AuthMethod); err != nil {
			return logical.ErrorResponse("auth_method: %v", err), nil
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

// environmentFromRequest is the stored environment (or a new one) with the
// fields given in d applied and checked.
func environmentFromRequest(ctx context.Context, s logical.Storage, name string, d *framework.FieldData) (*environmentEntry, *logical.Response, error) {
	env, err := getEnvironment(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	if env == nil {
		env = &environmentEntry{
			AuthMethod:           authClientSecretPost,
			AssumedTokenLifetime: defaultAssumedTokenLifetime,
		}
	}
	if resp := applyEnvironmentFields(env, d); resp != nil {
		return nil, resp, nil
	}
	return env, nil, nil
}

// discoveryInputs is what reading the issuer's metadata depends on.
func (e *environmentEntry) discoveryInputs() [5]string {
	return [5]string{e.Issuer, e.CACert, e.TLSClient.CertPEM + e.TLSClient.KeyPEM, e.ProxyURL, e.RequestTimeout.String()}
}

// applyEnvironmentFields sets the fields given in d and checks the result;
// it answers the caller's mistakes with an error response.
func applyEnvironmentFields(env *environmentEntry, d *framework.FieldData) *logical.Response {
	if v, ok := d.GetOk("token_url"); ok {
		env.TokenURL = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("issuer"); ok {
		env.Issuer = strings.TrimSpace(v.(string))
	}
	switch {
	case env.TokenURL != "" && env.Issuer != "":
		return logical.ErrorResponse(`set token_url or issuer, not both (to switch, set the other to "")`)
	case env.Issuer != "":
		if err := validateIssuer(env.Issuer); err != nil {
			return logical.ErrorResponse("issuer %v", err)
		}
	default:
		if err := validateTokenURL(env.TokenURL); err != nil {
			return logical.ErrorResponse("token_url %v (or set issuer to discover it)", err)
		}
	}
	if v, ok := d.GetOk("revocation_url"); ok {
		env.RevocationURL = strings.TrimSpace(v.(string))
		if env.RevocationURL != "" {
			if err := validateTokenURL(env.RevocationURL); err != nil {
				return logical.ErrorResponse("revocation_url %v", err)
			}
		}
	}
	if v, ok := d.GetOk("authorization_url"); ok {
		env.AuthorizationURL = strings.TrimSpace(v.(string))
		if env.AuthorizationURL != "" {
			if err := validateTokenURL(env.AuthorizationURL); err != nil {
				return logical.ErrorResponse("authorization_url %v", err)
			}
		}
	}
	if v, ok := d.GetOk("auth_method"); ok {
		env.AuthMethod = v.(string)
		if !slices.Contains(authMethods, env.AuthMethod) {
			return logical.ErrorResponse("auth_method must be one of %s, got %q", strings.Join(authMethods, ", "), env.AuthMethod)
		}
	}
	if v, ok := d.GetOk("assertion_audience"); ok {
		env.AssertionAudience = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("ca_cert"); ok {
		env.CACert = v.(string)
		if _, err := parseCACert(env.CACert); err != nil {
			return logical.ErrorResponse("ca_cert %v", err)
		}
	}
	if resp := applyTLSClientFields(&env.TLSClient, d); resp != nil {
		return resp
	}
	if v, ok := d.GetOk("proxy_url"); ok {
		env.ProxyURL = strings.TrimSpace(v.(string))
		if err := validateProxyURL(env.ProxyURL); err != nil {
			return logical.ErrorResponse("proxy_url %v", err)
		}
	}
	if v, ok := d.GetOk("request_timeout"); ok {
		env.RequestTimeout = time.Duration(v.(int)) * time.Second
		if env.RequestTimeout != 0 {
			if err := validateDuration(env.RequestTimeout, minRequestTimeout, maxRequestTimeout); err != nil {
				return logical.ErrorResponse("request_timeout %v (or 0 for the config's request_timeout)", err)
			}
		}
	}
	if v, ok := d.GetOk("assumed_token_lifetime"); ok {
		env.AssumedTokenLifetime = time.Duration(v.(int)) * time.Second
		if err := validateDuration(env.AssumedTokenLifetime, time.Second, maxAssumedTokenLifetime); err != nil {
			return logical.ErrorResponse("assumed_token_lifetime %v", err)
		}
	}
	if env.ProxyURL != "" {
		for _, endpoint := range []struct{ field, url string }{
			{"token_url", env.TokenURL}, {"issuer", env.Issuer}, {"revocation_url", env.RevocationURL},
			{"authorization_url", env.AuthorizationURL},
		} {
			if isPlainHTTP(endpoint.url) {
				return logical.ErrorResponse("proxy_url cannot be used with an http %s (%s): the proxy would carry the client's "+
					"credentials in clear; use an https endpoint, or remove proxy_url", endpoint.field, endpoint.url)
			}
		}
	}
	return nil
}

// applyTLSClientFields sets a client certificate and key (on an environment
// or a role) from d; setting the certificate to "" removes both.
func applyTLSClientFields(c *tlsClientCert, d *framework.FieldData) *logical.Response {
	certRaw, certOK := d.GetOk("tls_client_cert")
	keyRaw, keyOK := d.GetOk("tls_client_key")
	if !certOK && !keyOK {
		return nil
	}
	if certOK {
		c.CertPEM = strings.TrimSpace(certRaw.(string))
	}
	if keyOK {
		c.KeyPEM = strings.TrimSpace(keyRaw.(string))
	}
	if c.CertPEM == "" && (!keyOK || c.KeyPEM == "") {
		*c = tlsClientCert{}
		return nil
	}
	if _, _, err := parseTLSClientCert(c.CertPEM, c.KeyPEM); err != nil {
		return logical.ErrorResponse("%v", err)
	}
	return nil
}

// discoverEnvironment reads the issuer's metadata through the environment's
// own CA, certificate and proxy settings.
func (b *backend) discoverEnvironment(ctx context.Context, env *environmentEntry, cfg *configEntry) (*serverMetadata, error) {
	timeout := env.RequestTimeout
	if timeout == 0 {
		timeout = cfg.RequestTimeout
	}
	cert, err := env.TLSClient.parse()
	if err != nil {
		return nil, err
	}
	client, err := newHTTPClient(env, cert, timeout)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return discover(ctx, client, env.Issuer, b.now())
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
