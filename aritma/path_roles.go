package aritma

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const roleStoragePrefix = "roles/"

// roleEntry is one client's credentials for one environment.
type roleEntry struct {
	Environment  string `json:"environment"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// NextClientSecret takes over from ClientSecret when the bank refuses
	// that (invalid_client) and takes this one, or when it is promoted;
	// SecretSwitch records the last time either happened.
	NextClientSecret string            `json:"next_client_secret,omitempty"`
	SecretSwitch     *secretSwitch     `json:"secret_switch,omitempty"`
	Scopes           []string          `json:"scopes,omitempty"`
	Audience         string            `json:"audience,omitempty"`
	Resources        []string          `json:"resources,omitempty"`
	TokenParams      map[string]string `json:"token_params,omitempty"`
	MinRemaining     time.Duration     `json:"min_remaining"`
	// AuthMethod overrides the environment's; empty means the environment's.
	AuthMethod       string `json:"auth_method,omitempty"`
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`
	// Keys sign private_key_jwt assertions, each from its activation on
	// (signingKeyAt); all stay published in the JWKS until deleted.
	Keys []signingKey `json:"keys,omitempty"`
	// KeyActivationDelay is how long a rotated or imported key is published
	// before it signs.
	KeyActivationDelay time.Duration `json:"key_activation_delay"`
	TLSClient          tlsClientCert `json:"tls_client,omitempty"`
	// TokenPerLease gives every read its own token, revoked with its lease.
	TokenPerLease bool `json:"token_per_lease,omitempty"`

	// The user-consent grants (path_creds.go). AllowedGrantTypes empty
	// means client_credentials alone, what roles written before had.
	AllowedGrantTypes   []string          `json:"allowed_grant_types,omitempty"`
	RedirectURIs        []string          `json:"redirect_uris,omitempty"`
	ConsentScopes       []string          `json:"consent_scopes,omitempty"`
	AuthorizationParams map[string]string `json:"authorization_params,omitempty"`
	// NoPKCE turns PKCE off, for servers that refuse it; on by default.
	NoPKCE bool `json:"no_pkce,omitempty"`
	// KeepPassword keeps a password grant's password, for banks that issue
	// no refresh token; against RFC 9700 section 2.4.
	KeepPassword bool `json:"keep_password,omitempty"`
	// RefreshKeepAlive refreshes credentials nobody read for this long, so
	// that a sliding refresh-token lifetime does not lapse; 0: never.
	RefreshKeepAlive time.Duration `json:"refresh_keep_alive,omitempty"`
}

// allows reports whether the role may run grant.
func (r *roleEntry) allows(grant string) bool {
	if len(r.AllowedGrantTypes) == 0 {
		return grant == grantClientCredentials
	}
	return slices.Contains(r.AllowedGrantTypes, grant)
}

// allowedGrantTypes is what reads show.
func (r *roleEntry) allowedGrantTypes() []string {
	if len(r.AllowedGrantTypes) == 0 {
		return []string{grantClientCredentials}
	}
	return r.AllowedGrantTypes
}

// authMethod is the method the role uses, its own or its environment's.
func (r *roleEntry) authMethod(env *environmentEntry) string {
	if r.AuthMethod != "" {
		return r.AuthMethod
	}
	return env.AuthMethod
}

// defaultKeyActivationDelay is longer than banks usually cache a client's
// JWKS (minutes to hours), so that a rotated key is fetched before it signs.
const (
	defaultKeyActivationDelay = 24 * time.Hour
	maxKeyActivationDelay     = 90 * 24 * time.Hour
)

// getRole returns the stored role or nil.
func getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	entry, err := s.Get(ctx, roleStoragePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading role %q: %w", name, err)
	}
	if entry == nil {
		return nil, nil
	}
	// Roles written before key_activation_delay existed get the default.
	role := &roleEntry{KeyActivationDelay: defaultKeyActivationDelay}
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
			Pattern: roleStoragePrefix + framework.GenericNameRegex("name") + "/status$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefix,
				OperationSuffix: "role-status",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {Type: framework.TypeString, Description: "Name of the role.", Required: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathRoleStatus,
					Summary:  "A role's grants, cache hits, failures, last error, token expiry and pause on this node.",
				},
			},
			HelpSynopsis:    "Show what a role's grants did on this node.",
			HelpDescription: pathRoleStatusHelp,
		},
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
			Fields: withTLSClientFields(map[string]*framework.FieldSchema{
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
					Description: "Client secret issued by the bank; required for client_secret_post and client_secret_basic. Write-only: reads show client_secret_set.",
					DisplayAttrs: &framework.DisplayAttributes{
						Name:      "Client secret",
						Sensitive: true,
					},
				},
				"next_client_secret": {
					Type: framework.TypeString,
					Description: "The client secret the bank will take after a rotation. Requests send client_secret until the bank " +
						"refuses it (invalid_client); then this one is tried, and if the bank takes it, it becomes client_secret. " +
						"next-secret/promote switches at once; empty (or next-secret DELETE) drops it. Write-only: reads show next_client_secret_set.",
					DisplayAttrs: &framework.DisplayAttributes{
						Name:      "Next client secret",
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
				"auth_method": {
					Type: framework.TypeString,
					Description: "Client authentication, overriding the environment's: client_secret_post, client_secret_basic, " +
						"private_key_jwt, tls_client_auth or self_signed_tls_client_auth. Empty: the environment's.",
					AllowedValues: authMethodValues(true),
				},
				"signing_algorithm": {
					Type:          framework.TypeString,
					Description:   "Algorithm of keys generated for private_key_jwt: RS256, PS256 or ES256. Empty: RS256.",
					AllowedValues: []interface{}{"", algRS256, algPS256, algES256},
				},
				"private_key": {
					Type: framework.TypeString,
					Description: "PEM private key (RSA 2048+ or EC P-256) to import for private_key_jwt; it becomes the current " +
						"signing key. Write-only. Without one, a private_key_jwt role gets a key generated in Vault.",
					DisplayAttrs: &framework.DisplayAttributes{Sensitive: true, EditType: "textarea"},
				},
				"token_per_lease": {
					Type: framework.TypeBool,
					Description: "Give every read a token of its own instead of the shared cached one, and revoke it at the " +
						"environment's revocation endpoint (RFC 7009) when its lease is revoked. Costs one grant per read.",
				},
				"key_activation_delay": {
					Type: framework.TypeDurationSecond,
					Description: "How long a rotated or imported private_key_jwt key is published in the JWKS before it signs, " +
						"so that the bank has fetched it first; keys/<kid>/promote ends the wait. 0: sign at once. Default 24h, at most 90 days.",
					Default: int(defaultKeyActivationDelay.Seconds()),
				},
				"min_remaining": {
					Type:        framework.TypeDurationSecond,
					Description: minRemainingHelp + " Default: the config's default_min_remaining (1m).",
				},
				"allowed_grant_types": {
					Type: framework.TypeCommaStringSlice,
					Description: "Grants the role may run: client_credentials (token/<role>), authorization_code and password " +
						"(creds/<role>/<name>, a bank customer's consent). implicit is refused. Default: client_credentials.",
				},
				"redirect_uris": {
					Type: framework.TypeCommaStringSlice,
					Description: "Redirect URIs registered at the bank for authorization_code, matched exactly; " +
						"the mount's callback (<vault>/v1/<mount>/callback) lets the bank redirect the customer to Vault.",
				},
				"consent_scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Scopes to ask a customer to consent to, e.g. bankservice offline_access (offline_access for a refresh token).",
				},
				"authorization_params": {
					Type:        framework.TypeKVPairs,
					Description: "Extra parameters of the authorization request, as key=value pairs; not secret.",
				},
				"pkce": {
					Type:        framework.TypeBool,
					Description: "Send a PKCE S256 challenge with every authorization request (RFC 7636). Default true.",
					Default:     true,
				},
				"keep_password": {
					Type: framework.TypeBool,
					Description: "Keep a password grant's password to run the grant again, for banks that issue no refresh token. " +
						"Against RFC 9700 section 2.4; default false: the password is used once and discarded.",
				},
				"refresh_keep_alive": {
					Type: framework.TypeDurationSecond,
					Description: "Refresh a customer credential that nobody read for this long, so that a refresh token with a " +
						"sliding lifetime does not lapse. 0 (the default): only reads refresh.",
				},
			}, "PEM client certificate (and chain) for tls_client_auth or self_signed_tls_client_auth. Default: the environment's."),
			ExistenceCheck: b.roleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathRoleRead,
					Summary:  "Read a role. The client secret is never returned.",
				},
				logical.CreateOperation: writeOperation(b.pathRoleWrite, "Create a role."),
				logical.UpdateOperation: writeOperation(b.pathRoleWrite, "Update a role; fields not given keep their values."),
				logical.DeleteOperation: writeOperation(b.pathRoleDelete, "Delete a role and drop its cached token."),
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

// pathRolesList lists roles; -detailed shows each one's status on this
// node, from memory alone (the keys are in roles/<name>/status), so that a
// list costs one storage call however many roles there are.
func (b *backend) pathRolesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, roleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	info := map[string]interface{}{}
	now := b.now()
	for _, name := range names {
		src, _ := b.cachedSource(name)
		info[name] = b.statsFor(name).status(src, nil, now)
	}
	return logical.ListResponseWithInfo(names, info), nil
}

// pathRoleStatus is a role's status on this node: what its grants did
// since the plugin started there, never a token or a secret.
func (b *backend) pathRoleStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	role, err := getRole(ctx, req.Storage, name)
	if err != nil || role == nil {
		return nil, err
	}
	src, _ := b.cachedSource(name)
	return &logical.Response{Data: b.statsFor(name).status(src, role, b.now())}, nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	role, err := getRole(ctx, req.Storage, name)
	if err != nil || role == nil {
		return nil, err
	}
	data := map[string]interface{}{
		"environment":            role.Environment,
		"client_id":              role.ClientID,
		"client_secret_set":      role.ClientSecret != "",
		"next_client_secret_set": role.NextClientSecret != "",
		"scopes":                 nonNil(role.Scopes),
		"audience":               role.Audience,
		"resource":               nonNil(role.Resources),
		"token_params":           nonNilMap(role.TokenParams),
		"min_remaining":          int64(role.MinRemaining.Seconds()),
		"auth_method":            role.AuthMethod,
		"signing_algorithm":      role.SigningAlgorithm,
		"token_per_lease":        role.TokenPerLease,
		"tls_client_cert":        role.TLSClient.CertPEM,
		"tls_client_key_set":     role.TLSClient.KeyPEM != "",
		"key_activation_delay":   int64(role.KeyActivationDelay.Seconds()),
		"allowed_grant_types":    role.allowedGrantTypes(),
		"redirect_uris":          nonNil(role.RedirectURIs),
		"consent_scopes":         nonNil(role.ConsentScopes),
		"authorization_params":   nonNilMap(role.AuthorizationParams),
		"pkce":                   !role.NoPKCE,
		"keep_password":          role.KeepPassword,
		"refresh_keep_alive":     int64(role.RefreshKeepAlive.Seconds()),
	}
	if role.TLSClient.isSet() {
		data["tls_client_cert_expires_at"] = certExpiry(role.TLSClient.CertPEM)
	}
	if sw := role.SecretSwitch; sw != nil {
		data["client_secret_switched_at"] = sw.At.UTC().Format(time.RFC3339)
		data["client_secret_switch_reason"] = sw.Reason
	}
	if len(role.Keys) > 0 {
		keys := make([]map[string]interface{}, len(role.Keys))
		now := b.now()
		current := signingKeyAt(role.Keys, now)
		for i, k := range role.Keys {
			keys[i] = map[string]interface{}{
				"kid":          k.ID,
				"algorithm":    k.Algorithm,
				"created_at":   k.CreatedAt.Format(time.RFC3339),
				"activates_at": k.activation().Format(time.RFC3339),
				"current":      i == current,
				"state":        keyState(role.Keys, i, current, now),
			}
		}
		data["keys"] = keys
		data["jwks_path"] = req.MountPoint + roleStoragePrefix + name + "/jwks"
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	role, err := getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if role == nil {
		cfg, err := getConfig(ctx, req.Storage)
		if err != nil {
			return nil, err
		}
		role = &roleEntry{
			Environment:        cfg.DefaultEnvironment,
			MinRemaining:       cfg.DefaultMinRemaining,
			KeyActivationDelay: defaultKeyActivationDelay,
		}
	}
	if resp := applyRoleFields(role, d); resp != nil {
		return resp, nil
	}
	env, err := getEnvironment(ctx, req.Storage, role.Environment)
	if err != nil {
		return nil, err
	}
	if env == nil {
		return logical.ErrorResponse("environment: %q does not exist; %s", role.Environment, environmentHint), nil
	}
	method := role.authMethod(env)
	if resp := role.checkAgainst(env, method); resp != nil {
		return resp, nil
	}
	if resp := b.applyRoleKeys(role, method, d); resp != nil {
		return resp, nil
	}

	if err := putRole(ctx, req.Storage, name, role); err != nil {
		return nil, err
	}
	b.dropRoleSource(name)
	if role.TokenPerLease && env.revocationEndpoint(method) == "" {
		return &logical.Response{Warnings: []string{fmt.Sprintf("environment %q has no revocation endpoint: this role's "+
			"tokens will not be revoked at the server when their leases are; set revocation_url or issuer on the environment",
			role.Environment)}}, nil
	}
	return nil, nil
}

// applyRoleFields sets the fields given in d that need no environment to
// check, and checks them; it answers the caller's mistakes with an error
// response.
func applyRoleFields(role *roleEntry, d *framework.FieldData) *logical.Response {
	if v, ok := d.GetOk("environment"); ok {
		role.Environment = v.(string)
	}
	if v, ok := d.GetOk("client_id"); ok {
		role.ClientID = v.(string)
	}
	if err := validateClientID(role.ClientID); err != nil {
		return logical.ErrorResponse("client_id %v", err)
	}
	if v, ok := d.GetOk("client_secret"); ok {
		role.ClientSecret = v.(string)
		if role.ClientSecret == role.NextClientSecret {
			role.NextClientSecret = "" // promoted by the writer
		}
	}
	if v, ok := d.GetOk("next_client_secret"); ok {
		role.NextClientSecret = v.(string)
	}
	if v, ok := d.GetOk("auth_method"); ok {
		role.AuthMethod = v.(string)
		if role.AuthMethod != "" && !slices.Contains(authMethods, role.AuthMethod) {
			return logical.ErrorResponse("auth_method must be one of %s (or empty for the environment's), got %q",
				strings.Join(authMethods, ", "), role.AuthMethod)
		}
	}
	if resp := applyTLSClientFields(&role.TLSClient, d); resp != nil {
		return resp
	}
	if v, ok := d.GetOk("key_activation_delay"); ok {
		role.KeyActivationDelay = time.Duration(v.(int)) * time.Second
		if err := validateDuration(role.KeyActivationDelay, 0, maxKeyActivationDelay); err != nil {
			return logical.ErrorResponse("key_activation_delay %v", err)
		}
	}
	if v, ok := d.GetOk("token_per_lease"); ok {
		role.TokenPerLease = v.(bool)
	}
	if v, ok := d.GetOk("scopes"); ok {
		scopes, err := normalizeScopes(v.([]string))
		if err != nil {
			return logical.ErrorResponse("scopes: %v", err)
		}
		role.Scopes = scopes
	}
	if v, ok := d.GetOk("audience"); ok {
		role.Audience = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("resource"); ok {
		role.Resources = v.([]string)
		if err := validateResources(role.Resources); err != nil {
			return logical.ErrorResponse("resource: %v", err)
		}
	}
	if v, ok := d.GetOk("token_params"); ok {
		role.TokenParams = v.(map[string]string)
		if err := validateTokenParams(role.TokenParams); err != nil {
			return logical.ErrorResponse("token_params %v", err)
		}
	}
	if v, ok := d.GetOk("min_remaining"); ok {
		role.MinRemaining = time.Duration(v.(int)) * time.Second
		if err := validateDuration(role.MinRemaining, 0, maxMinRemaining); err != nil {
			return logical.ErrorResponse("min_remaining %v", err)
		}
	}
	return applyConsentFields(role, d)
}

// applyConsentFields sets and checks the fields of the user-consent grants.
func applyConsentFields(role *roleEntry, d *framework.FieldData) *logical.Response {
	if v, ok := d.GetOk("allowed_grant_types"); ok {
		grants, err := validateGrantTypes(v.([]string))
		if err != nil {
			return logical.ErrorResponse("allowed_grant_types: %v", err)
		}
		role.AllowedGrantTypes = grants
		if slices.Equal(grants, []string{grantClientCredentials}) {
			role.AllowedGrantTypes = nil // the default, stored as roles from before it existed are
		}
	}
	if v, ok := d.GetOk("redirect_uris"); ok {
		role.RedirectURIs = v.([]string)
		for _, uri := range role.RedirectURIs {
			if err := validateRedirectURI(uri); err != nil {
				return logical.ErrorResponse("redirect_uris: %q %v", uri, err)
			}
		}
	}
	if v, ok := d.GetOk("consent_scopes"); ok {
		scopes, err := normalizeScopes(v.([]string))
		if err != nil {
			return logical.ErrorResponse("consent_scopes: %v", err)
		}
		role.ConsentScopes = scopes
	}
	if v, ok := d.GetOk("authorization_params"); ok {
		role.AuthorizationParams = v.(map[string]string)
		if err := validateAuthorizationParams(role.AuthorizationParams); err != nil {
			return logical.ErrorResponse("authorization_params %v", err)
		}
	}
	if v, ok := d.GetOk("pkce"); ok {
		role.NoPKCE = !v.(bool)
	}
	if v, ok := d.GetOk("keep_password"); ok {
		role.KeepPassword = v.(bool)
	}
	if v, ok := d.GetOk("refresh_keep_alive"); ok {
		role.RefreshKeepAlive = time.Duration(v.(int)) * time.Second
		if err := validateDuration(role.RefreshKeepAlive, 0, maxRefreshKeepAlive); err != nil {
			return logical.ErrorResponse("refresh_keep_alive %v", err)
		}
		if role.RefreshKeepAlive > 0 && role.RefreshKeepAlive < minRefreshKeepAlive {
			return logical.ErrorResponse("refresh_keep_alive must be 0 or at least %s, got %s", minRefreshKeepAlive, role.RefreshKeepAlive)
		}
	}
	if role.allows(grantAuthorizationCode) && len(role.RedirectURIs) == 0 {
		return logical.ErrorResponse("authorization_code needs redirect_uris: the exact URIs registered at the bank " +
			"(the mount's callback, <vault address>/v1/<mount>/callback, lets the bank redirect the customer to Vault)")
	}
	return nil
}

// checkAgainst checks what the role needs from its environment for method:
// a method the server supports, and the credentials that method sends.
func (r *roleEntry) checkAgainst(env *environmentEntry, method string) *logical.Response {
	if err := env.checkAuthMethod(method); err != nil {
		return logical.ErrorResponse("auth_method: %v", err)
	}
	if usesClientSecret(method) || r.ClientSecret != "" {
		if err := validateClientSecret(r.ClientSecret); err != nil {
			return logical.ErrorResponse("client_secret %v", err)
		}
	}
	if r.NextClientSecret != "" {
		if !usesClientSecret(method) {
			return logical.ErrorResponse("next_client_secret is for client_secret_post and client_secret_basic; this role uses %s", method)
		}
		if err := validateClientSecret(r.NextClientSecret); err != nil {
			return logical.ErrorResponse("next_client_secret %v", err)
		}
		if r.NextClientSecret == r.ClientSecret {
			return logical.ErrorResponse("next_client_secret is the same as client_secret; give the secret the bank will take next")
		}
	}
	if usesTLSClientCert(method) && !r.TLSClient.isSet() && !env.TLSClient.isSet() {
		return logical.ErrorResponse("%s needs tls_client_cert and tls_client_key, on the role or on environment %q", method, r.Environment)
	}
	return nil
}

// applyRoleKeys imports a private key given in d, or, for a private_key_jwt
// role without keys, generates one. A role's first key signs at once; a key
// imported into a role that has one is published first (addKey).
func (b *backend) applyRoleKeys(role *roleEntry, method string, d *framework.FieldData) *logical.Response {
	if v, ok := d.GetOk("signing_algorithm"); ok {
		role.SigningAlgorithm = v.(string)
		if role.SigningAlgorithm != "" && !slices.Contains(signingAlgorithms, role.SigningAlgorithm) {
			return logical.ErrorResponse("signing_algorithm must be one of %s, got %q", strings.Join(signingAlgorithms, ", "), role.SigningAlgorithm)
		}
	}
	if v, ok := d.GetOk("private_key"); ok {
		alg := ""
		if _, given := d.GetOk("signing_algorithm"); given {
			alg = role.SigningAlgorithm
		}
		key, err := importSigningKey(v.(string), alg, b.now())
		if err != nil {
			return logical.ErrorResponse("private_key %v", err)
		}
		role.addKey(*key)
		return nil
	}
	if method == authPrivateKeyJWT && len(role.Keys) == 0 {
		key, err := generateSigningKey(role.signingAlgorithm(), b.now())
		if err != nil {
			return logical.ErrorResponse("%v", err)
		}
		role.addKey(*key)
	}
	return nil
}

// addKey adds key to the role's keys (an already known key moves to the
// end). It signs at once if no key signs yet, and otherwise after the
// role's key_activation_delay: the second phase of a rotation.
func (r *roleEntry) addKey(key signingKey) {
	r.Keys = slices.DeleteFunc(r.Keys, func(k signingKey) bool { return k.ID == key.ID })
	if signingKeyAt(r.Keys, key.CreatedAt) >= 0 {
		key.ActivatesAt = key.CreatedAt.Add(r.KeyActivationDelay)
	}
	r.Keys = append(r.Keys, key)
}

// keyState describes key i for reads: current (signing now), pending (to
// sign from its activation) or previous (published, signing nothing).
func keyState(keys []signingKey, i, current int, now time.Time) string {
	switch {
	case i == current:
		return "current"
	case keys[i].activation().After(now):
		return "pending"
	default:
		return "previous"
	}
}

func (r *roleEntry) signingAlgorithm() string {
	if r.SigningAlgorithm == "" {
		return algRS256
	}
	return r.SigningAlgorithm
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	name := d.Get("name").(string)
	creds, err := req.Storage.List(ctx, credentialStoragePrefix+name+"/")
	if err != nil {
		return nil, fmt.Errorf("listing the credentials of role %q: %w", name, err)
	}
	if len(creds) > 0 {
		return logical.ErrorResponse("role %q has %d customer credentials (creds/%s/); delete them first, "+
			"which revokes their refresh tokens at the bank", name, len(creds), name), nil
	}
	if err := req.Storage.Delete(ctx, roleStoragePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role %q: %w", name, err)
	}
	b.dropRoleSource(name)
	b.forgetRetiredSource(name)
	b.dropCredentials(name, "")
	b.forgetStats(name)
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
change only the fields given. A change to anything a token request depends
on, and deleting the role, drops the role's cached token, so the next read
uses the new settings; a change to its signing keys alone keeps it.

min_remaining: ` + minRemainingHelp + `
`

const pathRoleStatusHelp = `
roles/<name>/status shows, for this node and since the plugin started on it
(since, node): the grants made, the cache hits, the failures by class
(refused: the server refused, 4xx other than 429; server: 5xx, 429, or not a
token response; network; timeout), the last error with the server's status,
error and error_description, the latency and time of the last grant, the
current token's expiry and when the first read after token_replaced_after
will replace it, the failure pause (failures in a row, until when), and for
private_key_jwt the current and next key. Never a token or a secret.
list -detailed on roles/ shows the same for every role, without the keys.
`
