package provider

import (
	"context"
	"net/http"
	"net/url"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/vault/api"
)

// environmentResource is aritma_environment: environments/<name>. The
// built-in production and development are adopted on create and restored
// to their defaults on destroy (the engine's delete does that).
type environmentResource struct{ client *client }

func newEnvironmentResource() resource.Resource { return &environmentResource{} }

type environmentModel struct {
	Name                  types.String `tfsdk:"name"`
	TokenURL              types.String `tfsdk:"token_url"`
	Issuer                types.String `tfsdk:"issuer"`
	RevocationURL         types.String `tfsdk:"revocation_url"`
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
			"name": schema.StringAttribute{Required: true, Description: "Name of the environment.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"token_url":      optional("Token endpoint; set this or issuer."),
			"issuer":         optional("Issuer whose metadata names the endpoints; set this or token_url."),
			"revocation_url": optional("Revocation endpoint (RFC 7009), for token_per_lease roles."),
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

func (r *environmentResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		r.client = c
	}
}

func (r *environmentResource) write(ctx context.Context, plan, config *environmentModel, sendKey bool) diag.Diagnostics {
	var diags diag.Diagnostics
	data := map[string]interface{}{
		"token_url":              plan.TokenURL.ValueString(),
		"issuer":                 plan.Issuer.ValueString(),
		"revocation_url":         plan.RevocationURL.ValueString(),
		"auth_method":            plan.AuthMethod.ValueString(),
		"assertion_audience":     plan.AssertionAudience.ValueString(),
		"ca_cert":                plan.CACert.ValueString(),
		"tls_client_cert":        plan.TLSClientCert.ValueString(),
		"proxy_url":              plan.ProxyURL.ValueString(),
		"request_timeout":        plan.RequestTimeout.ValueInt64(),
		"assumed_token_lifetime": plan.AssumedTokenLifetime.ValueInt64(),
	}
	if sendKey && !config.TLSClientKeyWO.IsNull() {
		data["tls_client_key"] = config.TLSClientKeyWO.ValueString()
	}
	if _, err := r.client.vault.Logical().WriteWithContext(ctx, r.client.path("environments/"+plan.Name.ValueString()), data); err != nil {
		diags.AddError("Writing environment "+plan.Name.ValueString(), err.Error())
	}
	return diags
}

func (r *environmentResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan, config environmentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if resp.Diagnostics.Append(r.write(ctx, &plan, &config, true)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.readInto(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *environmentResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, config, state environmentModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.Config.Get(ctx, &config)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	sendKey := !plan.TLSClientKeyWOVersion.Equal(state.TLSClientKeyWOVersion)
	if resp.Diagnostics.Append(r.write(ctx, &plan, &config, sendKey)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.readInto(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *environmentResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state environmentModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	found, diags := r.readEnvironment(ctx, &state)
	resp.Diagnostics.Append(diags...)
	if !found {
		resp.State.RemoveResource(ctx)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *environmentResource) readInto(ctx context.Context, m *environmentModel) diag.Diagnostics {
	found, diags := r.readEnvironment(ctx, m)
	if !found && !diags.HasError() {
		diags.AddError("Reading environment "+m.Name.ValueString(), "the environment does not exist after it was written")
	}
	return diags
}

// readEnvironment sets every field the engine reads back. With an issuer,
// token_url reads as the discovered endpoint, which is not the
// configuration's: it stays as configured. A proxy_url reads with its
// password hidden: it stays as configured while the rest matches.
func (r *environmentResource) readEnvironment(ctx context.Context, m *environmentModel) (bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	secret, err := r.client.vault.Logical().ReadWithContext(ctx, r.client.path("environments/"+m.Name.ValueString()))
	if err != nil {
		if re, ok := err.(*api.ResponseError); ok && re.StatusCode == http.StatusNotFound {
			return false, nil
		}
		diags.AddError("Reading environment "+m.Name.ValueString(), err.Error())
		return false, diags
	}
	if secret == nil {
		return false, nil
	}
	d := secret.Data
	m.Issuer = stringOrNull(d["issuer"])
	if m.Issuer.IsNull() {
		m.TokenURL = stringOrNull(d["token_url"])
	}
	m.RevocationURL = stringOrNull(d["revocation_url"])
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
	return true, diags
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
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if _, err := r.client.vault.Logical().DeleteWithContext(ctx, r.client.path("environments/"+state.Name.ValueString())); err != nil {
		resp.Diagnostics.AddError("Deleting environment "+state.Name.ValueString(), err.Error())
	}
}

func (r *environmentResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	resource.ImportStatePassthroughID(ctx, path.Root("name"), req, resp)
}

var (
	_ resource.ResourceWithConfigure   = (*environmentResource)(nil)
	_ resource.ResourceWithImportState = (*environmentResource)(nil)
)
