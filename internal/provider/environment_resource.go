package provider

import (
	"context"
	"net/url"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// environmentResource is aritma_environment: environments/<name>. The
// built-in production and development are adopted on create and restored
// to their defaults on destroy (the engine's delete does that).
type environmentResource struct{ engineObject }

func newEnvironmentResource() resource.Resource {
	return &environmentResource{engineObject{kind: "environments", noun: "environment"}}
}

type environmentModel struct {
	Mount                 types.String `tfsdk:"mount"`
	Name                  types.String `tfsdk:"name"`
	TokenURL              types.String `tfsdk:"token_url"`
	Issuer                types.String `tfsdk:"issuer"`
	RevocationURL         types.String `tfsdk:"revocation_url"`
	AuthorizationURL      types.String `tfsdk:"authorization_url"`
	AuthMethod            types.String `tfsdk:"auth_method"`
	AssertionAudience     types.String `tfsdk:"assertion_audience"`
	CACert                types.String `tfsdk:"ca_cert"`
	TLSClientCert         types.String `tfsdk:"tls_client_cert"`
	TLSClientKeyWO        types.String `tfsdk:"tls_client_key_wo"`
	TLSClientKeyWOVersion types.Int64  `tfsdk:"tls_client_key_wo_version"`
	ProxyURL              types.String `tfsdk:"proxy_url"`
	RequestTimeout        types.Int64  `tfsdk:"request_timeout"`
	AssumedTokenLifetime  types.Int64  `tfsdk:"assumed_token_lifetime"`
}

func (r *environmentResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_environment"
}

func (r *environmentResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	optional := func(description string) schema.StringAttribute {
		return schema.StringAttribute{Optional: true, Description: description}
	}
	resp.Schema = schema.Schema{
		Description: "An environment of the Aritma engine: an authorization server. production and development are built in; managing one overrides it, destroying it restores its defaults.",
		Attributes: map[string]schema.Attribute{
			"mount": mountAttribute(),
			"name": schema.StringAttribute{Required: true, Description: "Name of the environment.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"token_url":         optional("Token endpoint; set this or issuer."),
			"issuer":            optional("Issuer whose metadata names the endpoints; set this or token_url."),
			"revocation_url":    optional("Revocation endpoint (RFC 7009), for token_per_lease roles and customer credentials."),
			"authorization_url": optional("Authorization endpoint, where bank customers consent (authorization_code). Default: the issuer's."),
			"auth_method": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("client_secret_post"),
				Description: "How clients authenticate, unless a role says otherwise."},
			"assertion_audience":        optional("aud of private_key_jwt assertions. Default: the token endpoint."),
			"ca_cert":                   optional("PEM bundle trusted instead of the system's roots."),
			"tls_client_cert":           optional("PEM client certificate for mutual TLS, for roles without their own."),
			"tls_client_key_wo":         writeOnly("PEM private key of tls_client_cert."),
			"tls_client_key_wo_version": woVersion("tls_client_key_wo"),
			"proxy_url":                 optional("HTTP proxy for this server's https endpoints."),
			"request_timeout": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(0),
				Description: "Seconds a token request may take; 0: the config's."},
			"assumed_token_lifetime": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(300),
				Description: "Seconds a token lives when the response does not say."},
		},
	}
}

// apply writes plan (prior is nil on create) and reads the environment
// back into it.
func (r *environmentResource) apply(ctx context.Context, plan, config, prior *environmentModel) diag.Diagnostics {
	r.resolveMount(&plan.Mount)
	data := map[string]interface{}{
		"token_url":              plan.TokenURL.ValueString(),
		"issuer":                 plan.Issuer.ValueString(),
		"revocation_url":         plan.RevocationURL.ValueString(),
		"authorization_url":      plan.AuthorizationURL.ValueString(),
		"auth_method":            plan.AuthMethod.ValueString(),
		"assertion_audience":     plan.AssertionAudience.ValueString(),
		"ca_cert":                plan.CACert.ValueString(),
		"tls_client_cert":        plan.TLSClientCert.ValueString(),
		"proxy_url":              plan.ProxyURL.ValueString(),
		"request_timeout":        plan.RequestTimeout.ValueInt64(),
		"assumed_token_lifetime": plan.AssumedTokenLifetime.ValueInt64(),
	}
	sendKey := prior == nil || !plan.TLSClientKeyWOVersion.Equal(prior.TLSClientKeyWOVersion)
	if sendKey && !config.TLSClientKeyWO.IsNull() {
		data["tls_client_key"] = config.TLSClientKeyWO.ValueString()
	}
	diags := r.write(ctx, plan.Mount, plan.Name, data)
	if diags.HasError() {
		return diags
	}
	read, d := r.readWritten(ctx, plan.Mount, plan.Name)
	if diags.Append(d...); read != nil {
		setEnvironment(plan, read)
	}
	return diags
}

func (r *environmentResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	applyPlan(ctx, req.Plan, req.Config, nil, &resp.State, &resp.Diagnostics, func(plan, config, prior *environmentModel) diag.Diagnostics {
		return r.apply(ctx, plan, config, prior)
	})
}

func (r *environmentResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	applyPlan(ctx, req.Plan, req.Config, &req.State, &resp.State, &resp.Diagnostics, func(plan, config, prior *environmentModel) diag.Diagnostics {
		return r.apply(ctx, plan, config, prior)
	})
}

func (r *environmentResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	refreshState(ctx, req, resp, func(m *environmentModel) (bool, diag.Diagnostics) {
		r.resolveMount(&m.Mount)
		read, diags := r.read(ctx, m.Mount, m.Name)
		if read != nil {
			setEnvironment(m, read)
		}
		return read != nil, diags
	})
}

// setEnvironment sets every field the engine reads back. With an issuer,
// token_url reads as the discovered endpoint, which is not the
// configuration's: it stays as configured. A proxy_url reads with its
// password hidden: it stays as configured while the rest matches.
func setEnvironment(m *environmentModel, d map[string]interface{}) {
	m.Issuer = stringOrNull(d["issuer"])
	if m.Issuer.IsNull() {
		m.TokenURL = stringOrNull(d["token_url"])
	}
	m.RevocationURL = stringOrNull(d["revocation_url"])
	m.AuthorizationURL = stringOrNull(d["authorization_url"])
	m.AuthMethod = types.StringValue(str(d["auth_method"]))
	m.AssertionAudience = stringOrNull(d["assertion_audience"])
	m.CACert = stringOrNull(d["ca_cert"])
	m.TLSClientCert = stringOrNull(d["tls_client_cert"])
	if d["tls_client_key_set"] != true {
		m.TLSClientKeyWOVersion = types.Int64Null()
	}
	if read := str(d["proxy_url"]); read != redactedProxy(m.ProxyURL.ValueString()) {
		m.ProxyURL = stringOrNull(read)
	}
	m.RequestTimeout = types.Int64Value(num(d["request_timeout"]))
	m.AssumedTokenLifetime = types.Int64Value(num(d["assumed_token_lifetime"]))
}

// redactedProxy is a proxy URL as the engine reads it back.
func redactedProxy(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func (r *environmentResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state environmentModel
	if resp.Diagnostics.Append(req.State.Get(ctx, &state)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.delete(ctx, state.Mount, state.Name)...)
}

func (r *environmentResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	r.importState(ctx, req, resp)
}

var (
	_ resource.ResourceWithConfigure   = (*environmentResource)(nil)
	_ resource.ResourceWithImportState = (*environmentResource)(nil)
)
