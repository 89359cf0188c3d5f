package aritma

// The backend's cache of token sources, one per role: lookup, construction
// from storage, and what a change to storage drops.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hashicorp/vault/sdk/logical"
)

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
		b.forgetRetiredSource(name)
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

	src, err = b.newTokenSource(name, role, env, cfg)
	if err != nil {
		return nil, logical.ErrorResponse("role %q: %v", name, err), nil
	}
	return b.storeSource(name, src, generation), nil, nil
}

// newTokenSource builds a role's token source with the backend's clock,
// logger and retry settings.
func (b *backend) newTokenSource(name string, role *roleEntry, env *environmentEntry, cfg *configEntry) (*tokenSource, error) {
	if !role.allows(grantClientCredentials) {
		return nil, fmt.Errorf("allows %s, not client_credentials: its tokens are read at creds/%s/<name>",
			strings.Join(role.allowedGrantTypes(), ", "), name)
	}
	grant, shared, err := b.newGrantClient(name, role, env, cfg)
	if err != nil {
		return nil, err
	}
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
	grant.scopes, grant.params = role.Scopes, params
	current, next := role.ClientSecret, role.NextClientSecret
	stats := b.statsFor(name)
	stats.usedWith(role.Environment)
	return &tokenSource{
		onSecretSwitch: func(ctx context.Context) { b.storeSecretSwitch(ctx, name, current, next) },
		metrics:        b.metrics,
		role:           name,
		sharedLeaseData: map[string]interface{}{
			"secret_type": secretAccessTokenType,
			"role":        name,
		},
		environment:      role.Environment,
		grant:            grant,
		sharedHTTPClient: shared,
		minRemaining:     role.MinRemaining,
		perLease:         role.TokenPerLease,
		settings:         grantSettings(role, env, cfg),
		stats:            stats,
		now:              b.now,
		logger:           b.Logger(),
	}, nil
}

// newGrantClient is how the role reaches its environment's token endpoint:
// the endpoint, the client authentication, the HTTP client and the time
// limit. Roles of one environment share its cached HTTP client (shared is
// true); a role with a client certificate of its own gets a client of its
// own.
func (b *backend) newGrantClient(name string, role *roleEntry, env *environmentEntry, cfg *configEntry) (g *grantClient, shared bool, err error) {
	method := role.authMethod(env)
	if err := env.checkAuthMethod(method); err != nil {
		return nil, false, err
	}
	tokenURL := env.tokenEndpoint(method)
	auth := &clientAuth{
		method:       method,
		clientID:     role.ClientID,
		clientSecret: role.ClientSecret,
		nextSecret:   role.NextClientSecret,
		audience:     cmp.Or(env.AssertionAudience, tokenURL),
	}
	if method == authPrivateKeyJWT {
		if len(role.Keys) == 0 {
			return nil, false, fmt.Errorf("private_key_jwt needs a key: vault write -f <mount>/roles/%s/keys/rotate", name)
		}
		if auth.keys, err = newKeySchedule(role.Keys, b.now()); err != nil {
			return nil, false, err
		}
	}

	timeout := env.RequestTimeout
	if timeout == 0 {
		timeout = cfg.RequestTimeout
	}
	httpClient, shared := b.cachedHTTPClient(role.Environment), true
	if role.TLSClient.isSet() || httpClient == nil {
		certs := env.TLSClient
		shared = !role.TLSClient.isSet()
		if !shared {
			certs = role.TLSClient
		}
		cert, err := certs.parse()
		if err != nil {
			return nil, false, err
		}
		if httpClient, err = newHTTPClient(env, cert, timeout); err != nil {
			return nil, false, err
		}
	}
	return &grantClient{
		tokenURL:        tokenURL,
		revocationURL:   env.revocationEndpoint(method),
		auth:            auth,
		httpClient:      httpClient,
		timeout:         timeout,
		assumedLifetime: env.AssumedTokenLifetime,
		retryBase:       b.retryBase,
	}, shared, nil
}

// cachedSource returns the role's token source if one is cached, and the
// generation to hand to storeSource after building one.
func (b *backend) cachedSource(role string) (*tokenSource, uint64) {
	b.sourcesMu.RLock()
	defer b.sourcesMu.RUnlock()
	return b.sources[role], b.generation
}

func (b *backend) cachedHTTPClient(environment string) *http.Client {
	b.sourcesMu.RLock()
	defer b.sourcesMu.RUnlock()
	return b.httpClients[environment]
}

// storeSource caches src and its environment's HTTP client, unless another
// reader cached a source first (that one wins, so concurrent first reads share
// one token) or something was invalidated since generation (then src serves
// only the read that built it). A cached src takes over the token of the
// role's retired source when their settings match.
func (b *backend) storeSource(role string, src *tokenSource, generation uint64) *tokenSource {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	if existing := b.sources[role]; existing != nil {
		return existing
	}
	if b.generation == generation {
		if old := b.retired[role]; old != nil {
			src.adopt(old)
			delete(b.retired, role)
		}
		b.sources[role] = src
		if src.sharedHTTPClient {
			b.shareHTTPClientLocked(src.environment, src.grant.httpClient)
		}
	}
	return src
}

// shareHTTPClientLocked keeps client as environment's, for its roles and
// credentials to share connections, unless it has one already. The caller
// holds sourcesMu and has checked that storage did not change since the
// client was built.
func (b *backend) shareHTTPClientLocked(environment string, client *http.Client) {
	if b.httpClients[environment] == nil {
		b.httpClients[environment] = client
	}
}

// shareHTTPClient is shareHTTPClientLocked for a client built from storage
// read at generation.
func (b *backend) shareHTTPClient(environment string, client *http.Client, generation uint64) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	if b.generation == generation {
		b.shareHTTPClientLocked(environment, client)
	}
}

// currentGeneration is the generation to hand to shareHTTPClient for what
// is read from storage after it.
func (b *backend) currentGeneration() uint64 {
	b.sourcesMu.RLock()
	defer b.sourcesMu.RUnlock()
	return b.generation
}

// dropRoleSource is called when the role's storage changes: the source is
// retired, and rebuilt from storage on the role's next read.
func (b *backend) dropRoleSource(role string) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	b.generation++
	b.retireLocked(role)
}

func (b *backend) retireLocked(role string) {
	if src := b.sources[role]; src != nil {
		b.retired[role] = src
		delete(b.sources, role)
	}
}

// forgetRetiredSource lets go of a deleted role's retired source.
func (b *backend) forgetRetiredSource(role string) {
	b.sourcesMu.Lock()
	defer b.sourcesMu.Unlock()
	delete(b.retired, role)
}

// dropEnvironmentSources retires the sources of the roles that use the
// environment, and drops its HTTP client.
func (b *backend) dropEnvironmentSources(environment string) {
	b.dropSources(func(name string) bool { return name == environment })
}

// dropAllSources is for a config change.
func (b *backend) dropAllSources() {
	b.dropSources(func(string) bool { return true })
}

func (b *backend) dropSources(environmentMatches func(string) bool) {
	b.sourcesMu.Lock()
	b.generation++
	for role, src := range b.sources {
		if environmentMatches(src.environment) {
			b.retireLocked(role)
		}
	}
	var dropped []*http.Client
	for environment, client := range b.httpClients {
		if environmentMatches(environment) {
			delete(b.httpClients, environment)
			dropped = append(dropped, client)
		}
	}
	b.sourcesMu.Unlock()
	for _, client := range dropped {
		client.CloseIdleConnections()
	}
}

// clean forgets everything: the mount is going away.
func (b *backend) clean(context.Context) {
	b.sourcesMu.Lock()
	b.generation++
	clients := b.httpClients
	b.sources = make(map[string]*tokenSource)
	b.retired = make(map[string]*tokenSource)
	b.httpClients = make(map[string]*http.Client)
	b.sourcesMu.Unlock()
	for _, client := range clients {
		client.CloseIdleConnections()
	}
}
