package aritma

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
)

// callbackPath is the mount's redirect URI for the bank: unauthenticated,
// since it is the customer's browser that arrives there.
const callbackPath = "callback"

var credentialNameFields = map[string]*framework.FieldSchema{
	"role": {Type: framework.TypeString, Description: "Name of the role.", Required: true},
	"name": {Type: framework.TypeString, Description: "Name of the bank customer's credential under the role.", Required: true},
}

func withCredentialName(fields map[string]*framework.FieldSchema) map[string]*framework.FieldSchema {
	for k, v := range credentialNameFields {
		fields[k] = v
	}
	return fields
}

// pathCredRead is creds/<role>/<name>, which the backend lists early: the
// framework tries patterns in order, and reads of it are a hot path.
func pathCredRead(b *backend) *framework.Path {
	return &framework.Path{
		// A plain character class, as token/'s: this is a hot path.
		Pattern:      "creds/(?P<role>[\\w.-]+)/(?P<name>[\\w.-]+)$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "credential"},
		Fields: withCredentialName(map[string]*framework.FieldSchema{
			"min_remaining": {
				Type:        framework.TypeDurationSecond,
				Description: "Read: ask for a token with at least this much life left.",
				Query:       true,
			},
			"code":         {Type: framework.TypeString, Description: "Finish consent: the code of the bank's redirect.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"state":        {Type: framework.TypeString, Description: "Finish consent: the state of the bank's redirect."},
			"iss":          {Type: framework.TypeString, Description: "Finish consent: the iss of the bank's redirect (RFC 9207), if it had one."},
			"callback_url": {Type: framework.TypeString, Description: "Finish consent: the whole URL the bank redirected to, instead of code, state and iss.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"username":     {Type: framework.TypeString, Description: "Password grant: the customer's username at the bank."},
			"password": {
				Type:         framework.TypeString,
				Description:  "Password grant: the customer's password, used once and discarded unless the role has keep_password. Write-only.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
			},
		}),
		ExistenceCheck: b.credentialExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathCredRead,
				Summary:  "The customer's access token, as a lease that lasts as long as the token.",
			},
			logical.CreateOperation: writeOperation(b.pathCredWrite, "Finish a consent (code and state, or callback_url), or run the password grant."),
			logical.UpdateOperation: writeOperation(b.pathCredWrite, "Finish a consent (code and state, or callback_url), or run the password grant."),
			logical.DeleteOperation: writeOperation(b.pathCredDelete, "Revoke the refresh token at the bank (best effort) and forget the credential."),
		},
		HelpSynopsis:    "A bank customer's credential: the access token for an API that acts for the customer.",
		HelpDescription: pathCredHelpDescription,
	}
}

func pathCreds(b *backend) []*framework.Path {
	name := framework.GenericNameRegex("name")
	role := framework.GenericNameRegex("role")
	return []*framework.Path{
		{
			Pattern:      "creds/" + role + "/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "credentials"},
			Fields:       map[string]*framework.FieldSchema{"role": credentialNameFields["role"]},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathCredsList,
					Summary:  "List a role's customer credentials; -detailed shows each one's status, never a token.",
				},
			},
			HelpSynopsis:    "List the bank customers' credentials of a role.",
			HelpDescription: pathCredHelpDescription,
		},
		{
			Pattern:      "creds/" + role + "/" + name + "/authorize$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "start", OperationSuffix: "consent"},
			Fields: withCredentialName(map[string]*framework.FieldSchema{
				"redirect_uri": {
					Type:        framework.TypeString,
					Description: "Where the bank sends the customer back: one of the role's redirect_uris. Default: the first.",
				},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: writeOperation(b.pathCredAuthorize,
					"Start a customer's consent: an authorization URL to send the customer to, valid for 10 minutes, once."),
			},
			HelpSynopsis:    "Start a bank customer's consent (authorization_code with PKCE).",
			HelpDescription: pathCredHelpDescription,
		},
		{
			Pattern:      "creds/" + role + "/" + name + "/status$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationSuffix: "credential-status"},
			Fields:       withCredentialName(map[string]*framework.FieldSchema{}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathCredStatus,
					Summary:  "A customer credential's status, scope and times; never a token.",
				},
			},
			HelpSynopsis:    "Show a bank customer's credential without its tokens.",
			HelpDescription: pathCredHelpDescription,
		},
		{
			Pattern:      callbackPath + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefix, OperationVerb: "finish", OperationSuffix: "consent"},
			Fields: map[string]*framework.FieldSchema{
				"code":              {Type: framework.TypeString, Description: "The authorization code.", Query: true},
				"state":             {Type: framework.TypeString, Description: "The state of the consent request.", Query: true},
				"iss":               {Type: framework.TypeString, Description: "The issuer (RFC 9207).", Query: true},
				"error":             {Type: framework.TypeString, Description: "The bank's error, such as access_denied.", Query: true},
				"error_description": {Type: framework.TypeString, Description: "The bank's description of the error.", Query: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathCallback,
					Summary:  "The bank's redirect after a customer's consent: finishes it and answers the browser with a page.",
				},
			},
			HelpSynopsis:    "Redirect URI for the bank: finishes a customer's consent in Vault.",
			HelpDescription: pathCredHelpDescription,
		},
	}
}

func (b *backend) credentialExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	cred, err := getCredential(ctx, req.Storage, d.Get("role").(string), d.Get("name").(string))
	return cred != nil, err
}

func (b *backend) pathCredAuthorize(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, name := d.Get("role").(string), d.Get("name").(string)
	c, errResp, err := b.loadCredentialRequest(ctx, req.Storage, req.MountPoint, role, name, grantAuthorizationCode)
	if err != nil || errResp != nil {
		return errResp, err
	}
	endpoint := c.env.authorizationEndpoint()
	if endpoint == "" {
		return logical.ErrorResponse("environment %q has no authorization endpoint: set its authorization_url, or its issuer to discover it",
			c.roleEntry.Environment), nil
	}
	redirectURI := c.roleEntry.RedirectURIs[0]
	if v, ok := d.GetOk("redirect_uri"); ok {
		redirectURI = v.(string)
		if !slices.Contains(c.roleEntry.RedirectURIs, redirectURI) {
			return logical.ErrorResponse("redirect_uri %q is not one of role %q's redirect_uris (%s), which must match exactly",
				redirectURI, role, strings.Join(c.roleEntry.RedirectURIs, ", ")), nil
		}
	}
	pending := pendingConsent{
		Role: role, Credential: name, RedirectURI: redirectURI, Scopes: c.roleEntry.ConsentScopes,
		EntityID: req.EntityID, ExpiresAt: b.now().Add(consentTimeout).UTC(),
	}
	var challenge string
	if !c.roleEntry.NoPKCE {
		if md := c.env.Metadata; md != nil && len(md.CodeChallengeMethods) > 0 && !slices.Contains(md.CodeChallengeMethods, "S256") {
			return logical.ErrorResponse("the authorization server at %s does not list PKCE S256 (it lists %s); "+
				"set pkce=false on the role only if the bank cannot do PKCE", c.env.Issuer, strings.Join(md.CodeChallengeMethods, ", ")), nil
		}
		pending.Verifier = oauth2.GenerateVerifier()
		challenge = oauth2.S256ChallengeFromVerifier(pending.Verifier)
	}
	state := randomToken()
	authURL, err := authorizationURL(endpoint, c.roleEntry, redirectURI, state, challenge)
	if err != nil {
		return nil, fmt.Errorf("building the authorization URL: %w", err)
	}
	entry, err := logical.StorageEntryJSON(pendingKey(state), pending)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing the consent request: %w", err)
	}
	return &logical.Response{Data: map[string]interface{}{
		"authorization_url": authURL,
		"state":             state,
		"redirect_uri":      redirectURI,
		"expires_at":        pending.ExpiresAt.Format(time.RFC3339),
	}}, nil
}

func (b *backend) pathCredRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// Renewing writes the rotated refresh token: only the active node can.
	if b.onPerformanceStandby() {
		return nil, logical.ErrReadOnly
	}
	// The captures are strings the framework has checked; d.Get would
	// parse them again.
	role, _ := d.Raw["role"].(string)
	name, _ := d.Raw["name"].(string)
	want, errResp := readMinRemaining(d)
	if errResp != nil {
		return errResp, nil
	}
	src := b.credentialSource(role, name)
	tok, ttl, warnings, err := b.credentialToken(ctx, req.Storage, src, req.MountPoint, role, name, want)
	if err != nil {
		return nil, err
	}
	return &logical.Response{
		Secret: &logical.Secret{
			LeaseOptions: logical.LeaseOptions{TTL: ttl, MaxTTL: ttl, Renewable: false},
			InternalData: src.leaseData,
		},
		Data:     tok.data,
		Warnings: warnings,
	}, nil
}

func (b *backend) pathCredWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, name := d.Get("role").(string), d.Get("name").(string)
	if _, ok := d.GetOk("password"); ok {
		return b.passwordCredential(ctx, req, d, role, name)
	}
	o := consentOutcome{role: role, name: name, appPosted: true}
	if raw, ok := d.GetOk("callback_url"); ok {
		u, err := url.Parse(raw.(string))
		if err != nil {
			return logical.ErrorResponse("callback_url is not a URL"), nil
		}
		q := u.Query()
		o.code, o.state, o.iss, o.errorCode, o.errorDetail = q.Get("code"), q.Get("state"), q.Get("iss"), q.Get("error"), q.Get("error_description")
	} else {
		o.code, o.state, o.iss = d.Get("code").(string), d.Get("state").(string), d.Get("iss").(string)
		if o.code == "" && o.state == "" {
			return logical.ErrorResponse("write code and state (or callback_url) from the bank's redirect to finish a consent, " +
				"or username and password for the password grant"), nil
		}
	}
	_, _, resp, err := b.finishConsent(ctx, req.Storage, req.MountPoint, o)
	return resp, err
}

// passwordCredential runs the password grant at once and keeps its refresh
// token; the password is discarded unless the role keeps it (RFC 6749
// section 4.3.1).
func (b *backend) passwordCredential(ctx context.Context, req *logical.Request, d *framework.FieldData, role, name string) (*logical.Response, error) {
	username, password := strings.TrimSpace(d.Get("username").(string)), d.Get("password").(string)
	if username == "" || password == "" {
		return logical.ErrorResponse("the password grant needs username and password"), nil
	}
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	src := b.credentialSource(role, name)
	src.mu.Lock()
	defer src.mu.Unlock()
	c, errResp, err := b.loadCredentialRequest(ctx, req.Storage, req.MountPoint, role, name, grantPassword)
	if err != nil || errResp != nil {
		return errResp, err
	}
	answer, err := c.grant.passwordGrant(ctx, username, password, c.roleEntry.ConsentScopes, b.now)
	if err != nil {
		scrub := func(s string) string { return strings.ReplaceAll(c.grant.auth.scrub(s), password, "[redacted]") }
		return nil, describeGrantError(err, c.grant.tokenURL, c.grant.timeout, scrub)
	}
	if answer.tokenErr != nil && answer.refreshToken == "" {
		return nil, answer.tokenErr
	}
	now := b.now().UTC()
	cred := &credentialEntry{
		GrantType: grantPassword, ClientID: c.roleEntry.ClientID, RefreshToken: answer.refreshToken, Status: credActive,
		Username: username, EntityID: req.EntityID, ConsentedAt: now, RefreshedAt: now, Scope: strings.Join(c.roleEntry.ConsentScopes, " "),
	}
	if answer.tokenErr == nil {
		cred.Access, cred.Scope = storeToken(answer.token), answer.token.scope
	}
	if c.roleEntry.KeepPassword {
		cred.Password = password
	}
	if err := b.putCredential(ctx, req.Storage, role, name, cred); err != nil {
		return nil, err
	}
	src.token.Store(nil)
	var warnings []string
	if answer.refreshToken == "" && !c.roleEntry.KeepPassword {
		warnings = append(warnings, "the bank issued no refresh token: when this access token expires, write username and "+
			"password again (or set keep_password on the role, against RFC 9700 section 2.4)")
	}
	if answer.tokenErr != nil {
		warnings = append(warnings, answer.tokenErr.Error()+"; the refresh token is kept, and the next read renews it")
	}
	return &logical.Response{Warnings: warnings}, nil
}

func (b *backend) pathCredDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, name := d.Get("role").(string), d.Get("name").(string)
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	src := b.credentialSource(role, name)
	src.mu.Lock()
	defer src.mu.Unlock()
	cred, err := getCredential(ctx, req.Storage, role, name)
	if err != nil || cred == nil {
		return nil, err
	}
	var warnings []string
	if cred.RefreshToken != "" {
		if warning := b.revokeRefreshToken(ctx, req, role, name, cred); warning != "" {
			warnings = append(warnings, warning)
		}
	}
	if err := req.Storage.Delete(ctx, credentialKey(role, name)); err != nil {
		return nil, fmt.Errorf("deleting credential %q of role %q: %w", name, role, err)
	}
	b.statsFor(role).noteCredential(name, false)
	src.token.Store(nil)
	if len(warnings) > 0 {
		return &logical.Response{Warnings: warnings}, nil
	}
	return nil, nil
}

// revokeRefreshToken asks the bank to revoke cred's refresh token (RFC
// 7009), best effort: what went wrong becomes a warning.
func (b *backend) revokeRefreshToken(ctx context.Context, req *logical.Request, role, name string, cred *credentialEntry) string {
	c, errResp, err := b.loadCredentialRequest(ctx, req.Storage, req.MountPoint, role, name, grantAuthorizationCode, grantPassword)
	switch {
	case err != nil:
		return "the refresh token was not revoked at the bank: " + err.Error()
	case errResp != nil:
		return "the refresh token was not revoked at the bank: " + errResp.Error().Error()
	case c.grant.revocationURL == "":
		return fmt.Sprintf("the refresh token was not revoked at the bank: environment %q has no revocation endpoint", c.roleEntry.Environment)
	}
	if err := c.grant.revoke(ctx, cred.RefreshToken, "refresh_token", b.now); err != nil {
		return "the refresh token was not revoked at the bank: " + c.scrub(cred, err.Error())
	}
	return ""
}

// credentialStatus is a credential as status reads and lists show it.
func credentialStatus(cred *credentialEntry) map[string]interface{} {
	data := map[string]interface{}{
		"status":            cred.Status,
		"grant_type":        cred.GrantType,
		"client_id":         cred.ClientID,
		"scope":             cred.Scope,
		"refresh_token_set": cred.RefreshToken != "",
		"password_kept":     cred.Password != "",
		"username":          cred.Username,
		"entity_id":         cred.EntityID,
		"consented_at":      formatTime(cred.ConsentedAt),
		"refreshed_at":      formatTime(cred.RefreshedAt),
	}
	if cred.Access != nil {
		data["access_token_expires_at"] = formatTime(cred.Access.ExpiresAt)
	}
	if e := cred.LastError; e != nil {
		data["last_error"] = map[string]interface{}{
			"at": formatTime(e.At), "error": e.Code, "error_description": e.Description, "message": e.Message,
		}
	}
	return data
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func (b *backend) pathCredStatus(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cred, err := getCredential(ctx, req.Storage, d.Get("role").(string), d.Get("name").(string))
	if err != nil || cred == nil {
		return nil, err
	}
	return &logical.Response{Data: credentialStatus(cred)}, nil
}

func (b *backend) pathCredsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role := d.Get("role").(string)
	names, err := req.Storage.List(ctx, credentialStoragePrefix+role+"/")
	if err != nil {
		return nil, fmt.Errorf("listing the credentials of role %q: %w", role, err)
	}
	info := map[string]interface{}{}
	for _, name := range names {
		cred, err := getCredential(ctx, req.Storage, role, name)
		if err != nil {
			return nil, err
		}
		if cred != nil {
			info[name] = credentialStatus(cred)
		}
	}
	return logical.ListResponseWithInfo(names, info), nil
}

// pathCallback is where the bank sends the customer's browser after
// consent. It finishes the consent as the app-posted write does, and
// answers the browser with a page saying what happened.
func (b *backend) pathCallback(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// Finishing writes storage: only the active node can.
	if b.onPerformanceStandby() {
		return nil, logical.ErrReadOnly
	}
	o := consentOutcome{
		code: d.Get("code").(string), state: d.Get("state").(string), iss: d.Get("iss").(string),
		errorCode: d.Get("error").(string), errorDetail: d.Get("error_description").(string),
	}
	role, name, resp, err := b.finishConsent(ctx, req.Storage, req.MountPoint, o)
	page := consentPage{Role: role, Credential: name, Recorded: err == nil && resp == nil}
	status := http.StatusOK
	switch {
	case err != nil:
		page.Reason, status = err.Error(), http.StatusBadGateway
		if coded, ok := err.(logical.HTTPCodedError); ok {
			status = coded.Code()
		}
		if status >= 500 {
			b.Logger().Warn("consent not recorded", "role", role, "credential", name, "error", err)
		}
	case resp != nil:
		page.Reason, status = resp.Error().Error(), http.StatusBadRequest
	}
	var body bytes.Buffer
	if err := consentPageTemplate.Execute(&body, page); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "text/html; charset=utf-8",
		logical.HTTPRawBody:     body.Bytes(),
		logical.HTTPStatusCode:  status,
	}}, nil
}

type consentPage struct {
	Role, Credential, Reason string
	Recorded                 bool
}

var consentPageTemplate = template.Must(template.New("consent").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{{if .Recorded}}Consent recorded{{else}}Consent not recorded{{end}}</title></head>
<body>
{{if .Recorded}}<h1 id="result">Consent recorded</h1>
<p>Your consent for {{.Credential}} ({{.Role}}) is recorded. You can close this page.</p>
{{else}}<h1 id="result">Consent not recorded</h1>
<p id="reason">{{.Reason}}</p>
{{end}}</body>
</html>
`))

const pathCredHelpDescription = `
A role that allows authorization_code or password (allowed_grant_types)
keeps one credential per bank customer at creds/<role>/<name>, so that
Vault policies can govern each customer's path.

authorization_code, the customer's consent at the bank:
  vault write <mount>/creds/<role>/<name>/authorize
    returns authorization_url (with a fresh state and a PKCE S256 challenge;
    valid for 10 minutes, once). Send the customer there. The bank sends the
    customer back to the redirect URI with a code:
  - to the mount's callback (<vault>/v1/<mount>/callback, registered at the
    bank as the redirect URI): Vault finishes the consent and shows the
    customer a page saying so;
  - or to the app, which writes code and state (or callback_url) to
    creds/<role>/<name>.
  The state is spent before the code is exchanged, iss is checked against
  the environment's issuer (RFC 9207), and a denial is recorded.

password: write username and password to creds/<role>/<name>. The grant runs
at once; only its refresh token is kept, unless the role has keep_password.

Reading creds/<role>/<name> returns the customer's access token as a lease
like token/<role>'s, renewed with the refresh token (rotated ones are stored
in one write) when it has less than min_remaining left. If the bank refuses
the refresh token (invalid_grant) the credential needs consent again: it is
kept, and reads say how. creds/<role>/<name>/status and list -detailed show
each credential's status (active, needs_consent, client_error, failing),
scope and times, never a token. Deleting revokes the refresh token at the
bank, best effort.

implicit is refused: ` + implicitRefusal + `.
`
