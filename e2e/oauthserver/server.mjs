// Test OAuth 2.0 authorization server for the end-to-end tests.
//
// Usage: node server.mjs <config.json>
//
// Built on oidc-provider with routes shaped like Aritma's IdentityServer
// (/connect/token, /connect/introspect, /connect/revocation). It serves only
// the client_credentials grant. When it is listening it prints ONE line of
// JSON (issuer and endpoint URLs) to stdout; everything else goes to stderr.
// Client secrets and tokens are never printed.
//
// Extra test-only routes:
//   GET  /api/me      a resource server: accepts a Bearer token (JWT or opaque)
//   GET  /test/stats  token endpoint counters (from oidc-provider's events)
//   POST /test/reset  zero the counters (204)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';

// stdout is reserved for the single ready line. oidc-provider prints its
// NOTICEs with console.info (i.e. to stdout), so send all console output to
// stderr. This must happen before oidc-provider is loaded, hence the dynamic
// import below.
console.log = console.info = console.debug = console.error;

// Exit cleanly (code 0) on SIGTERM/SIGINT at any point, even while still
// starting up (loading oidc-provider takes a moment).
let server;
function shutdown() {
  if (!server) process.exit(0);
  server.close(() => process.exit(0)); // also called back if not listening yet
  server.closeAllConnections(); // don't wait for idle keep-alive connections
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

const { default: Provider, errors } = await import('oidc-provider');
const { createLocalJWKSet, jwtVerify } = await import('jose');

const SCOPES = ['api', 'bankservice', 'IDENTITY'];

function fail(message) {
  console.error(`oauthserver: ${message}`);
  process.exit(1);
}

function loadConfig(path) {
  if (!path) fail('usage: node server.mjs <config.json>');
  let cfg;
  try {
    cfg = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read config ${path}: ${err.message}`);
  }
  if (!cfg || typeof cfg !== 'object') fail('config: must be a JSON object');
  const port = cfg.port ?? 0;
  const tokenTTL = cfg.token_ttl ?? 3600;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('config: port must be an integer 0-65535');
  if (!Number.isInteger(tokenTTL) || tokenTTL <= 0) fail('config: token_ttl must be a positive integer');
  if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) fail('config: clients must be a non-empty array');

  // access_token_format is ours: remember it per client and strip it; every
  // other key is passed through as oidc-provider client metadata.
  const formats = new Map();
  const clients = cfg.clients.map(({ access_token_format: format = 'jwt', ...metadata }) => {
    if (typeof metadata.client_id !== 'string' || !metadata.client_id) fail('config: every client needs a client_id');
    if (format !== 'jwt' && format !== 'opaque') fail(`config: client ${metadata.client_id}: access_token_format must be "jwt" or "opaque"`);
    formats.set(metadata.client_id, format);
    return {
      // Machine-to-machine clients: no redirects, no authorization endpoint.
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      ...metadata,
    };
  });
  // Optional: serve https, asking clients for a certificate (mutual TLS,
  // RFC 8705). tls.client_ca verifies CA-issued client certificates for
  // tls_client_auth; self-signed ones are matched against the client's jwks.
  const tls = cfg.tls ?? null;
  if (tls && (typeof tls.cert !== 'string' || typeof tls.key !== 'string')) fail('config: tls needs cert and key (PEM)');
  // Which client authentication methods the server accepts and lists in its
  // metadata (token_endpoint_auth_methods_supported).
  // oidc-provider accepts the TLS methods only with its mTLS feature, which
  // needs https.
  const authMethods = cfg.client_auth_methods ?? [
    'client_secret_basic', 'client_secret_post', 'private_key_jwt',
    ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
  ];
  return { port, tokenTTL, clients, formats, tls, authMethods };
}

// In-memory RS256 signing key, so no key material is ever committed. The
// public half verifies JWT access tokens at /api/me.
function signingKeys() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const meta = { alg: 'RS256', use: 'sig', kid: crypto.randomUUID() };
  return {
    privateJWKS: { keys: [{ ...privateKey.export({ format: 'jwk' }), ...meta }] },
    publicJWKS: { keys: [{ ...publicKey.export({ format: 'jwk' }), ...meta }] },
  };
}

function newStats() {
  return { grants: 0, by_client: {}, failures: 0, errors: {} };
}

const { port, tokenTTL, clients, formats, tls, authMethods } = loadConfig(process.argv[2]);
let stats = newStats();

// The issuer contains the port, which is only known once we listen (port 0),
// so listen first and create the provider afterwards.
let handler = (req, res) => { res.writeHead(503).end(); }; // until ready
server = tls
  ? https.createServer({
    cert: tls.cert,
    key: tls.key,
    ca: tls.client_ca,
    requestCert: true, // ask for a client certificate ...
    rejectUnauthorized: false, // ... but let client authentication judge it
  }, (req, res) => handler(req, res))
  : http.createServer((req, res) => handler(req, res));
server.on('error', (err) => fail(`listen: ${err.message}`));
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

// One resource server stands for "the bank API". It is always the default
// resource (see defaultResource), so a client_credentials request without a
// `resource` parameter still goes through it: that is what lets us choose the
// access token format (JWT or opaque) per client and carry the scope in it.
//
// Note: oidc-provider does not store JWT access tokens, and its introspection
// and revocation endpoints reject any JWT with 400 unsupported_token_type
// ("Structured JWT Tokens cannot be introspected/revoked ..."); no setting
// changes that. JWT access tokens are meant to be checked against the JWKS.
// Introspection and revocation work for opaque tokens only.
const RESOURCE = `${issuer}/api`;
const keys = signingKeys();
const verifyKeys = createLocalJWKSet(keys.publicJWKS);

// No adapter is configured: oidc-provider's in-memory one (it warns about
// that on stderr) is exactly right for a throwaway test server.
const provider = new Provider(issuer, {
  clients,
  jwks: keys.privateJWKS,
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // Listing the scopes here makes them "known": a client asking for one that is
  // not in its own `scope` metadata gets invalid_scope (like IdentityServer).
  scopes: SCOPES,
  routes: {
    token: '/connect/token',
    introspection: '/connect/introspect',
    revocation: '/connect/revocation',
    jwks: '/.well-known/jwks',
  },
  ttl: {
    ClientCredentials: () => tokenTTL,
  },
  clientAuthMethods: authMethods,
  // oidc-provider refuses to fetch from special-use addresses (SSRF
  // protection); in tests the jwks_uri it fetches is Vault on 127.0.0.1.
  fetch: (url, options) => {
    if (new URL(url).hostname === '127.0.0.1') delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  features: {
    devInteractions: { enabled: false }, // no end-user flows here
    // Mutual TLS client authentication (RFC 8705), only over https. Tokens
    // are not bound to the certificate: the engine hands them to apps that
    // do not hold its key.
    mTLS: {
      enabled: Boolean(tls),
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      certificateBoundAccessTokens: false,
      getCertificate: (ctx) => {
        const cert = ctx.req.socket.getPeerX509Certificate?.();
        return cert ?? undefined;
      },
      certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
      // Only subject DNs of the form CN=<name> are registered in tests.
      certificateSubjectMatches: (ctx, property, expected) => {
        if (property !== 'tls_client_auth_subject_dn') return false;
        const cert = ctx.req.socket.getPeerCertificate();
        return expected === `CN=${cert?.subject?.CN}`;
      },
    },
    clientCredentials: { enabled: true },
    // Explicit policies (the defaults behave the same but log a warning):
    // any configured client may introspect any token, as a resource server
    // would; only the owning client may revoke a token (RFC 7009).
    introspection: { enabled: true, allowedPolicy: () => true },
    revocation: {
      enabled: true,
      allowedPolicy: (ctx, client, token) => {
        if (token.clientId !== client.clientId) throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        return true;
      },
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: SCOPES.join(' '), // per-client limits are enforced by the client's `scope` metadata
          audience: RESOURCE,
          accessTokenTTL: tokenTTL,
          accessTokenFormat: formats.get(client.clientId) ?? 'jwt',
        };
      },
    },
  },
});

// Counters for /test/stats, fed by oidc-provider's events. A failed token
// request emits grant.error, except internal errors, which emit server_error.
provider.on('grant.success', (ctx) => {
  if (ctx.oidc.params.grant_type !== 'client_credentials') return;
  const id = ctx.oidc.client.clientId;
  stats.grants += 1;
  stats.by_client[id] = (stats.by_client[id] ?? 0) + 1;
});
function countFailure(err) {
  const code = err.error ?? 'server_error';
  stats.failures += 1;
  stats.errors[code] = (stats.errors[code] ?? 0) + 1;
}
provider.on('grant.error', (ctx, err) => countFailure(err));
provider.on('server_error', (ctx, err) => {
  if (ctx.oidc?.route === 'token') countFailure(err);
});

// Brief error log on stderr: error code and description only (never the
// request, which may carry a client secret or a token).
for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err.error}: ${err.error_description ?? ''}${err.error_detail ? ` (${err.error_detail})` : ''}`));
}
provider.on('server_error', (ctx, err) => console.error(`server_error: ${ctx.oidc?.route ?? ctx.path}: ${err.message}`));

const providerCallback = provider.callback();
function sendJSON(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
// GET /api/me stands for the bank API: it accepts a Bearer access token the
// way a resource server does (a JWT by its signature, issuer, audience and
// exp; an opaque token by looking it up) and answers with what it carries.
// Tests use it to check JWT tokens, which introspection cannot (see above).
async function resourceMe(req, res) {
  const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  if (!match) return sendJSON(res, 401, { active: false, error: 'invalid_request' });
  const token = match[1];
  try {
    if (token.split('.').length === 3) {
      const { payload } = await jwtVerify(token, verifyKeys, { issuer, audience: RESOURCE });
      return sendJSON(res, 200, {
        active: true, format: 'jwt', client_id: payload.client_id, scope: payload.scope ?? '', iat: payload.iat, exp: payload.exp,
      });
    }
    // client_credentials grants issue ClientCredentials tokens, not AccessTokens.
    const stored = await provider.ClientCredentials.find(token);
    if (!stored || stored.isExpired) throw new Error('unknown or expired token');
    return sendJSON(res, 200, {
      active: true, format: 'opaque', client_id: stored.clientId, scope: stored.scope ?? '', iat: stored.iat, exp: stored.exp,
    });
  } catch (err) {
    return sendJSON(res, 401, { active: false, error: 'invalid_token' });
  }
}

handler = (req, res) => {
  const path = req.url.split('?')[0];
  if (path === '/api/me') {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'method_not_allowed' });
    resourceMe(req, res).catch(() => sendJSON(res, 500, { error: 'server_error' }));
    return undefined;
  }
  if (path === '/test/stats') {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'method_not_allowed' });
    return sendJSON(res, 200, stats);
  }
  if (path === '/test/reset') {
    if (req.method !== 'POST') return sendJSON(res, 405, { error: 'method_not_allowed' });
    stats = newStats();
    res.writeHead(204).end();
    return undefined;
  }
  return providerCallback(req, res);
};

process.stdout.write(`${JSON.stringify({
  issuer,
  token_endpoint: `${issuer}/connect/token`,
  introspection_endpoint: `${issuer}/connect/introspect`,
  revocation_endpoint: `${issuer}/connect/revocation`,
  stats_endpoint: `${issuer}/test/stats`,
  resource_endpoint: `${issuer}/api/me`,
})}\n`);
