// Test OAuth 2.0 authorization server for the end-to-end tests.
//
// Usage: node server.mjs <config.json>
//
// Built on oidc-provider with routes shaped like Aritma's IdentityServer
// (/connect/authorize, /connect/token, /connect/introspect,
// /connect/revocation). It serves the client_credentials grant and, for
// clients registered for them, the banks' user-consent grants:
// authorization_code (login and consent as plain HTML pages at
// /interaction/:uid), refresh_token (rotated on every use) and password.
// When it is listening it prints ONE line of JSON (issuer and endpoint URLs)
// to stdout; everything else goes to stderr. Client secrets, passwords,
// codes and tokens are never printed.
//
// Extra test-only routes:
//   GET  /api/me                   a resource server: accepts a Bearer token (JWT or opaque)
//   GET  /test/stats               counters (from oidc-provider's events)
//   POST /test/reset               zero the counters (204)
//   POST /test/withdraw-consent    {"username": ...}: revoke the user's grants and sessions (204)
//   POST /test/drop-next-refresh   process the next refresh but never answer it (204)
//   POST /test/require-pkce        {"required": true|false} (204)
//   POST /test/client-secret       {"client_id": ..., "client_secret": ...}: the client's secret
//                                  is that one from now on, the old one refused (204), as after
//                                  a rotation at the bank

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

// Start-up steps go to the log, so that a start that stalls (seen in CI,
// not reproduced) shows where.
const started = Date.now();
const step = (what) => console.error(`oauthserver: ${what} (${Date.now() - started} ms)`);
const { default: Provider, errors } = await import('oidc-provider');
step('oidc-provider loaded');
const { createLocalJWKSet, jwtVerify } = await import('jose');
step('jose loaded');

const SCOPES = ['api', 'bankservice', 'IDENTITY'];
const DAY = 24 * 60 * 60;

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
  const accessTokenTTL = cfg.access_token_ttl ?? tokenTTL;
  const refreshTokenTTL = cfg.refresh_token_ttl ?? DAY;
  const requirePKCE = cfg.require_pkce ?? false;
  const passwordRefreshTokens = cfg.password_grant_refresh_tokens ?? true;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('config: port must be an integer 0-65535');
  for (const [key, value] of Object.entries({ token_ttl: tokenTTL, access_token_ttl: accessTokenTTL, refresh_token_ttl: refreshTokenTTL })) {
    if (!Number.isInteger(value) || value <= 0) fail(`config: ${key} must be a positive integer`);
  }
  for (const [key, value] of Object.entries({ require_pkce: requirePKCE, password_grant_refresh_tokens: passwordRefreshTokens })) {
    if (typeof value !== 'boolean') fail(`config: ${key} must be a boolean`);
  }
  if (!Array.isArray(cfg.clients) || cfg.clients.length === 0) fail('config: clients must be a non-empty array');

  // access_token_format is ours: remember it per client and strip it; every
  // other key is passed through as oidc-provider client metadata.
  const formats = new Map();
  const clients = cfg.clients.map(({ access_token_format: format, ...metadata }) => {
    if (typeof metadata.client_id !== 'string' || !metadata.client_id) fail('config: every client needs a client_id');
    format ||= 'jwt';
    if (format !== 'jwt' && format !== 'opaque') fail(`config: client ${metadata.client_id}: access_token_format must be "jwt" or "opaque"`);
    formats.set(metadata.client_id, format);
    // Machine-to-machine clients by default: no redirects, no authorization
    // endpoint. A client for the code grant gets response_types ["code"].
    const grantTypes = metadata.grant_types ?? ['client_credentials'];
    const client = {
      grant_types: grantTypes,
      response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
      redirect_uris: [],
      ...metadata,
    };
    // A client that may refresh may ask for offline_access, as
    // IdentityServer's AllowOfflineAccess: a `scope` allow-list must name it,
    // or oidc-provider answers invalid_scope.
    if (grantTypes.includes('refresh_token') && typeof client.scope === 'string' && !client.scope.split(' ').includes('offline_access')) {
      client.scope = `${client.scope} offline_access`.trim();
    }
    return client;
  });

  // Bank customers for the login page and the password grant. Their
  // account (default: the username) is the tokens' sub.
  const users = new Map();
  for (const user of cfg.users ?? []) {
    if (!user || typeof user.username !== 'string' || !user.username) fail('config: every user needs a username');
    if (typeof user.password !== 'string') fail(`config: user ${user.username}: password must be a string`);
    if (user.account !== undefined && (typeof user.account !== 'string' || !user.account)) fail(`config: user ${user.username}: account must be a non-empty string`);
    if (users.has(user.username)) fail(`config: user ${user.username} is listed twice`);
    users.set(user.username, { username: user.username, password: user.password, accountId: user.account ?? user.username });
  }
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
  return {
    port, tokenTTL, accessTokenTTL, refreshTokenTTL, requirePKCE, passwordRefreshTokens, clients, users, formats, tls, authMethods,
  };
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
  return {
    grants: 0, // client_credentials only, as by_client
    by_client: {},
    by_grant_type: {},
    failures: 0,
    errors: {},
    refresh_reuse_detected: 0,
    revocations: 0,
    authorizations: 0,
    denials: 0,
    authorization_errors: {},
    dropped_responses: 0,
  };
}

const config = loadConfig(process.argv[2]);
const {
  port, tokenTTL, accessTokenTTL, refreshTokenTTL, passwordRefreshTokens, clients, users, formats, tls, authMethods,
} = config;
let { requirePKCE } = config; // POST /test/require-pkce flips it
let stats = newStats();
let dropNextRefresh = false;
const usesGrant = (type) => clients.some((c) => c.grant_types.includes(type));

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
step(`listening on port ${server.address().port}`);
const issuer = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;

// One resource server stands for "the bank API". It is always the default
// resource (see defaultResource), so a client_credentials request without a
// `resource` parameter still goes through it: that is what lets us choose the
// access token format (JWT or opaque) per client and carry the scope in it.
// The user-consent grants issue their access tokens for it too: an
// authorization request without `resource` is granted it, and the code and
// refresh grants always use the granted resource (useGrantedResource), also
// when openid is asked for.
//
// Note: oidc-provider does not store JWT access tokens, and its introspection
// and revocation endpoints reject any JWT with 400 unsupported_token_type
// ("Structured JWT Tokens cannot be introspected/revoked ..."); no setting
// changes that. JWT access tokens are meant to be checked against the JWKS.
// Introspection and revocation work for opaque tokens only (refresh tokens
// are always opaque).
const RESOURCE = `${issuer}/api`;
const keys = signingKeys();
step('signing key made');
const verifyKeys = createLocalJWKSet(keys.publicJWKS);

function resourceServerInfo(client) {
  return {
    scope: SCOPES.join(' '), // per-client limits are enforced by the client's `scope` metadata
    audience: RESOURCE,
    accessTokenTTL: tokenTTL, // unused: ttl.AccessToken and ttl.ClientCredentials decide
    accessTokenFormat: formats.get(client.clientId) ?? 'jwt',
  };
}

// Users are found by account (the sub) when a code or refresh token is
// redeemed, and by username on the login page and in the password grant.
const accounts = new Map([...users.values()].map((user) => [user.accountId, user]));
function sha256(value) {
  return crypto.createHash('sha256').update(String(value)).digest();
}
// checkPassword returns the user, or undefined; it compares digests in
// constant time whether or not the user exists.
function checkPassword(username, password) {
  const user = users.get(String(username ?? ''));
  const ok = crypto.timingSafeEqual(sha256(user?.password ?? crypto.randomUUID()), sha256(password ?? ''));
  return user && ok ? user : undefined;
}

// No adapter is configured: oidc-provider's in-memory one (it warns about
// that on stderr) is exactly right for a throwaway test server.
const provider = new Provider(issuer, {
  clients,
  jwks: keys.privateJWKS,
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  // Listing the scopes here makes them "known": a client asking for one that is
  // not in its own `scope` metadata gets invalid_scope (like IdentityServer).
  // offline_access is known only when some client may refresh, so that
  // machine-only servers keep refresh_token out of grant_types_supported.
  scopes: [...SCOPES, ...(usesGrant('refresh_token') ? ['offline_access'] : [])],
  routes: {
    authorization: '/connect/authorize',
    token: '/connect/token',
    introspection: '/connect/introspect',
    revocation: '/connect/revocation',
    jwks: '/.well-known/jwks',
  },
  ttl: {
    ClientCredentials: () => tokenTTL,
    AccessToken: () => accessTokenTTL, // code, refresh and password grants
    RefreshToken: () => refreshTokenTTL, // each rotated token lives this long again
    // A grant (and a session) must outlive the refresh tokens it holds.
    Grant: () => Math.max(refreshTokenTTL, 14 * DAY),
    Session: () => Math.max(refreshTokenTTL, 14 * DAY),
    Interaction: () => 60 * 60, // the login and consent pages
  },
  // Every use of a refresh token spends it and issues a new one. Presenting a
  // spent one again makes oidc-provider revoke the whole grant.
  rotateRefreshToken: true,
  // issueRefreshToken stays oidc-provider's default: a refresh token for
  // clients allowed the refresh_token grant when offline_access was granted
  // (setting it at all would list refresh_token in grant_types_supported
  // even when no client may refresh). oidc-provider drops offline_access
  // from an authorization request without prompt=consent.
  // Only S256 exists in oidc-provider 9 (there is no pkce.methods any more);
  // require_pkce refuses code requests without a code_challenge. Public
  // clients always need one, as by oidc-provider's default.
  pkce: { required: (ctx, client) => requirePKCE || client.clientAuthMethod === 'none' },
  findAccount: (ctx, sub) => {
    if (!accounts.has(sub)) return undefined;
    return { accountId: sub, claims: async () => ({ sub }) };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Plain error page: no external fonts, so a browser without network is fine.
  renderError: (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1 id="error">${escapeHTML(out.error)}</h1><p id="error_description">${escapeHTML(out.error_description ?? '')}</p>`);
  },
  clientAuthMethods: authMethods,
  // oidc-provider refuses to fetch from special-use addresses (SSRF
  // protection); in tests the jwks_uri it fetches is Vault on 127.0.0.1.
  fetch: (url, options) => {
    if (new URL(url).hostname === '127.0.0.1') delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  features: {
    devInteractions: { enabled: false }, // our own pages at /interaction/:uid
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
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resourceIndicator, client) => {
        if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
        return resourceServerInfo(client);
      },
    },
  },
});

// The password grant (RFC 6749 4.3), which oidc-provider does not have. It
// makes a grant of its own, so that its refresh tokens go through the
// ordinary refresh_token grant (rotation, reuse detection, revocation).
async function passwordGrant(ctx) {
  const { client, params } = ctx.oidc;
  if (!params.username || params.password === undefined) throw new errors.InvalidRequest('username and password are required');
  const user = checkPassword(params.username, params.password);
  if (!user) throw new errors.InvalidGrant('invalid username or password');
  if (params.resource !== undefined && params.resource !== RESOURCE) throw new errors.InvalidTarget();

  // As at the authorization endpoint: offline_access is dropped, not
  // refused, when no refresh token may be issued; other known scopes must be
  // in the client's allow-list.
  const mayRefresh = passwordRefreshTokens && client.grantTypeAllowed('refresh_token');
  const requested = [...new Set((params.scope ?? '').split(' ').filter(Boolean))]
    .filter((scope) => scope !== 'offline_access' || mayRefresh);
  const allowed = client.scope ? new Set(client.scope.split(' ')) : undefined;
  const known = new Set([...SCOPES, 'offline_access']);
  for (const scope of requested) {
    if (allowed && known.has(scope) && !allowed.has(scope)) throw new errors.InvalidScope('requested scope is not allowed', scope);
  }
  const apiScope = requested.filter((scope) => SCOPES.includes(scope)).join(' ');
  const offline = requested.includes('offline_access');
  const scope = [apiScope, offline ? 'offline_access' : ''].filter(Boolean).join(' ');

  const grant = new provider.Grant({ accountId: user.accountId, clientId: client.clientId });
  if (apiScope) grant.addResourceScope(RESOURCE, apiScope);
  if (offline) grant.addOIDCScope('offline_access');
  const grantId = await grant.save();
  ctx.oidc.entity('Grant', grant);

  const at = new provider.AccessToken({
    accountId: user.accountId, client, grantId, gty: 'password', scope: apiScope || undefined,
  });
  at.resourceServer = new provider.ResourceServer(RESOURCE, resourceServerInfo(client));
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken;
  if (offline) {
    const rt = new provider.RefreshToken({
      accountId: user.accountId, client, grantId, gty: 'password', resource: RESOURCE, rotations: 0, scope,
    });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }
  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    token_type: at.tokenType,
    scope: apiScope || undefined,
    refresh_token: refreshToken,
  };
}
if (usesGrant('password')) provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope', 'resource']);

// Grants and sessions per account, for /test/withdraw-consent: the
// in-memory adapter cannot be searched, so note them as they are saved.
const grantsOf = new Map();
const sessionsOf = new Map();
function remember(index, accountId, id) {
  if (!accountId || !id) return;
  if (!index.has(accountId)) index.set(accountId, new Set());
  index.get(accountId).add(id);
}
provider.on('grant.saved', (grant) => remember(grantsOf, grant.accountId, grant.jti));
provider.on('session.saved', (session) => remember(sessionsOf, session.accountId, session.jti));

async function withdrawConsent(user) {
  const grants = grantsOf.get(user.accountId) ?? new Set();
  const sessions = sessionsOf.get(user.accountId) ?? new Set();
  await Promise.all([
    ...[...grants].flatMap((grantId) => [
      provider.AccessToken.revokeByGrantId(grantId),
      provider.RefreshToken.revokeByGrantId(grantId),
      provider.AuthorizationCode.revokeByGrantId(grantId),
      provider.Grant.adapter.destroy(grantId),
    ]),
    ...[...sessions].map((id) => provider.Session.adapter.destroy(id)),
  ]);
  grantsOf.delete(user.accountId);
  sessionsOf.delete(user.accountId);
}

// Counters for /test/stats, fed by oidc-provider's events. A failed token
// request emits grant.error, except internal errors, which emit server_error.
function bump(counts, key) {
  counts[key] = (counts[key] ?? 0) + 1;
}
provider.on('grant.success', (ctx) => {
  const grantType = ctx.oidc.params.grant_type;
  bump(stats.by_grant_type, grantType);
  // The refresh has been processed (the old token spent, the new one saved);
  // destroying the socket now means the response is never written (Koa skips
  // a response that is no longer writable).
  if (grantType === 'refresh_token' && dropNextRefresh) {
    dropNextRefresh = false;
    stats.dropped_responses += 1;
    ctx.req.socket.destroy();
  }
  if (grantType !== 'client_credentials') return;
  const id = ctx.oidc.client.clientId;
  stats.grants += 1;
  bump(stats.by_client, id);
});
function countFailure(err) {
  stats.failures += 1;
  bump(stats.errors, err.error ?? 'server_error');
}
provider.on('grant.error', (ctx, err) => {
  countFailure(err);
  // Reuse detection: the refresh grant finds the presented token marked
  // consumed (spent by an earlier rotation), destroys it and revokes the
  // whole grant, and fails with invalid_grant. That is the only way a
  // refresh fails on a token that is consumed and was not just rotated.
  const { entities, params } = ctx.oidc;
  if (params?.grant_type === 'refresh_token' && entities.RefreshToken?.consumed && !entities.RotatedRefreshToken) {
    stats.refresh_reuse_detected += 1;
  }
});
provider.on('server_error', (ctx, err) => {
  if (ctx.oidc?.route === 'token') countFailure(err);
});
provider.on('authorization.success', () => { stats.authorizations += 1; });
provider.on('authorization.error', (ctx, err) => {
  bump(stats.authorization_errors, err.error);
  if (err.error === 'access_denied') stats.denials += 1;
});
// The revocation endpoint destroys the presented token itself (one
// `<kind>.destroyed` event) and its grant in bulk (no events).
for (const kind of ['access_token', 'client_credentials', 'refresh_token']) {
  provider.on(`${kind}.destroyed`, () => {
    if (Provider.ctx?.oidc?.route === 'revocation') stats.revocations += 1;
  });
}

// Brief error log on stderr: error code and description only (never the
// request, which may carry a client secret, a password, a code or a token).
for (const event of ['grant.error', 'authorization.error', 'introspection.error', 'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err.error}: ${err.error_description ?? ''}${err.error_detail ? ` (${err.error_detail})` : ''}`));
}
provider.on('server_error', (ctx, err) => console.error(`server_error: ${ctx.oidc?.route ?? ctx.path}: ${err.message}`));

const providerCallback = provider.callback();
function sendJSON(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

// Request bodies of our own routes: a form or JSON.
async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  const raw = Buffer.concat(chunks).toString('utf8');
  if ((req.headers['content-type'] ?? '').startsWith('application/json')) {
    const body = raw ? JSON.parse(raw) : {};
    if (!body || typeof body !== 'object') throw new Error('body must be a JSON object');
    return body;
  }
  return Object.fromEntries(new URLSearchParams(raw));
}

// GET /api/me stands for the bank API: it accepts a Bearer access token the
// way a resource server does (a JWT by its signature, issuer, audience and
// exp; an opaque token by looking it up) and answers with what it carries.
// Tests use it to check JWT tokens, which introspection cannot (see above).
// sub is the user's account for the user-consent grants, the client_id for
// client_credentials.
async function resourceMe(req, res) {
  const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
  if (!match) return sendJSON(res, 401, { active: false, error: 'invalid_request' });
  const token = match[1];
  try {
    if (token.split('.').length === 3) {
      const { payload } = await jwtVerify(token, verifyKeys, { issuer, audience: RESOURCE });
      return sendJSON(res, 200, {
        active: true, format: 'jwt', client_id: payload.client_id, sub: payload.sub, scope: payload.scope ?? '', iat: payload.iat, exp: payload.exp,
      });
    }
    // client_credentials grants issue ClientCredentials tokens, the others AccessTokens.
    const stored = await provider.ClientCredentials.find(token) ?? await provider.AccessToken.find(token);
    if (!stored || stored.isExpired || (stored.aud ?? RESOURCE) !== RESOURCE) throw new Error('unknown or expired token');
    return sendJSON(res, 200, {
      active: true, format: 'opaque', client_id: stored.clientId, sub: stored.accountId ?? stored.clientId, scope: stored.scope ?? '', iat: stored.iat, exp: stored.exp,
    });
  } catch (err) {
    return sendJSON(res, 401, { active: false, error: 'invalid_token' });
  }
}

// The bank's login and consent pages, plain HTML that a Go client with a
// cookie jar or a headless browser can drive: ids username, password and
// login on the login page; approve and deny on the consent page.
function escapeHTML(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>${escapeHTML(title)}</title></head>
<body>
${body}
</body>
</html>
`;
}
function sendHTML(res, status, html) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}
function loginPage(details, { username = '', message = '' } = {}) {
  const uid = escapeHTML(details.uid);
  return page('Sign in', `<h1>Sign in</h1>
<p>The application <strong id="client">${escapeHTML(details.params.client_id)}</strong> asks to access your bank.</p>
${message ? `<p id="message" role="alert">${escapeHTML(message)}</p>` : ''}<form id="login-form" method="post" action="/interaction/${uid}/login">
<label for="username">Username</label> <input id="username" name="username" autocomplete="username" value="${escapeHTML(username)}" required>
<label for="password">Password</label> <input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login" type="submit">Sign in</button>
</form>
<form id="cancel-form" method="post" action="/interaction/${uid}/abort"><button id="cancel" type="submit">Cancel</button></form>`);
}
function consentPage(details) {
  const uid = escapeHTML(details.uid);
  const scopes = (details.params.scope ?? '').split(' ').filter(Boolean);
  const items = scopes.map((scope) => `<li>${escapeHTML(scope)}${scope === 'offline_access' ? ' (keep access while you are away)' : ''}</li>`).join('');
  return page('Allow access', `<h1>Allow access?</h1>
<p>The application <strong id="client">${escapeHTML(details.params.client_id)}</strong> asks, for your account <strong id="account">${escapeHTML(details.session?.accountId ?? '')}</strong>, for:</p>
<ul id="scopes">${items}</ul>
<form id="consent-form" method="post" action="/interaction/${uid}/confirm"><button id="approve" type="submit">Allow</button></form>
<form id="deny-form" method="post" action="/interaction/${uid}/abort"><button id="deny" type="submit">Deny</button></form>`);
}

// Consent grants everything the request asks for: the scopes (offline_access
// among them), the claims and the resource's scopes.
async function grantConsent(details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  return details.grantId ? {} : { grantId };
}

async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    if (!(err instanceof errors.SessionNotFound)) throw err;
    return sendHTML(res, 400, page('Error', '<h1 id="error">invalid_request</h1><p id="error_description">interaction expired or its cookie is missing</p>'));
  }
  if (details.uid !== uid) return sendHTML(res, 400, page('Error', '<h1 id="error">invalid_request</h1><p id="error_description">interaction mismatch</p>'));
  const prompt = details.prompt.name;
  if (!action) {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'method_not_allowed' });
    return sendHTML(res, 200, prompt === 'login' ? loginPage(details) : consentPage(details));
  }
  if (req.method !== 'POST') return sendJSON(res, 405, { error: 'method_not_allowed' });
  const form = await readBody(req);
  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (action === 'login') {
    if (prompt !== 'login') return sendHTML(res, 400, page('Error', '<h1 id="error">invalid_request</h1><p id="error_description">no login is pending</p>'));
    const user = checkPassword(form.username, form.password);
    if (!user) {
      console.error('interaction: login refused (unknown user or wrong password)');
      return sendHTML(res, 200, loginPage(details, { username: form.username ?? '', message: 'Invalid username or password.' }));
    }
    return provider.interactionFinished(req, res, { login: { accountId: user.accountId } }, { mergeWithLastSubmission: false });
  }
  // confirm
  if (prompt !== 'consent') return sendHTML(res, 400, page('Error', '<h1 id="error">invalid_request</h1><p id="error_description">no consent is pending</p>'));
  return provider.interactionFinished(req, res, { consent: await grantConsent(details) }, { mergeWithLastSubmission: true });
}

// The test hooks' own routes (POST, form or JSON body).
const hooks = {
  '/test/reset': async () => { stats = newStats(); },
  '/test/withdraw-consent': async (body) => {
    const user = users.get(String(body.username ?? ''));
    if (!user) return { status: 404, error: 'unknown user' };
    await withdrawConsent(user);
    return undefined;
  },
  '/test/drop-next-refresh': async () => { dropNextRefresh = true; },
  '/test/client-secret': async (body) => {
    const client = await provider.Client.find(String(body.client_id ?? ''));
    if (!client) return { status: 404, error: 'unknown client' };
    if (typeof body.client_secret !== 'string' || !body.client_secret) return { status: 400, error: 'client_secret must be a non-empty string' };
    // Static clients are one cached instance each: the next authentication
    // compares against the new secret.
    client.clientSecret = body.client_secret;
    return undefined;
  },
  '/test/require-pkce': async (body) => {
    const required = { true: true, false: false }[String(body.required)];
    if (required === undefined) return { status: 400, error: 'required must be true or false' };
    requirePKCE = required;
    return undefined;
  },
};

handler = (req, res) => {
  const path = req.url.split('?')[0];
  const fault = (err) => {
    console.error(`${path.startsWith('/interaction/') ? '/interaction' : path}: ${err.message}`);
    if (!res.headersSent) sendJSON(res, 500, { error: 'server_error' });
  };
  if (path === '/api/me') {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'method_not_allowed' });
    resourceMe(req, res).catch(() => sendJSON(res, 500, { error: 'server_error' }));
    return undefined;
  }
  if (path === '/test/stats') {
    if (req.method !== 'GET') return sendJSON(res, 405, { error: 'method_not_allowed' });
    return sendJSON(res, 200, stats);
  }
  if (Object.hasOwn(hooks, path)) {
    if (req.method !== 'POST') return sendJSON(res, 405, { error: 'method_not_allowed' });
    readBody(req)
      .catch((err) => { sendJSON(res, 400, { error: 'invalid_request', error_description: err.message }); })
      .then(async (body) => {
        if (!body) return;
        const out = await hooks[path](body);
        if (out) sendJSON(res, out.status, { error: out.error });
        else res.writeHead(204).end();
      })
      .catch(fault);
    return undefined;
  }
  const match = /^\/interaction\/([\w-]+)(?:\/(login|confirm|abort))?$/.exec(path);
  if (match) {
    interaction(req, res, match[1], match[2]).catch(fault);
    return undefined;
  }
  return providerCallback(req, res);
};

step('ready');
process.stdout.write(`${JSON.stringify({
  issuer,
  authorization_endpoint: `${issuer}/connect/authorize`,
  token_endpoint: `${issuer}/connect/token`,
  introspection_endpoint: `${issuer}/connect/introspect`,
  revocation_endpoint: `${issuer}/connect/revocation`,
  stats_endpoint: `${issuer}/test/stats`,
  resource_endpoint: `${issuer}/api/me`,
})}\n`);
