package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// configResource is aritma_config: the mount's defaults, one per mount.
// Destroying it restores the built-in defaults.
type configResource struct{ client *client }

func newConfigResource() resource.Resource { return &configResource{} }

type configModel struct {
	DefaultEnvironment  types.String `tfsdk:"default_environment"`
	DefaultMinRemaining types.Int64  `tfsdk:"default_min_remaining"`
	RequestTimeout      types.Int64  `tfsdk:"request_timeout"`
}

func (r *configResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_config"
}

func (r *configResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The Aritma engine's mount-wide defaults. Destroying it restores the built-in ones.",
		Attributes: map[string]schema.Attribute{
			"default_environment": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("production"),
				Description: "Environment of roles written without one."},
			"default_min_remaining": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(60),
				Description: "min_remaining, in seconds, of roles written without one."},
			"request_timeout": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(10),
				Description: "Seconds a token request may take, for environments that set none."},
		},
	}
}

func (r *configResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	if c, ok := req.ProviderData.(*client); ok {
		r.client = c
	}
}

func (r *configResource) write(ctx context.Context, m *configModel) diag.Diagnostics {
	var diags diag.Diagnostics
	_, err := r.client.vault.Logical().WriteWithContext(ctx, r.client.path("config"), map[string]interface{}{
		"default_environment":   m.DefaultEnvironment.ValueString(),
		"default_min_remaining": m.DefaultMinRemaining.ValueInt64(),
		"request_timeout":       m.RequestTimeout.ValueInt64(),
	})
	if err != nil {
		diags.AddError("Writing config", err.Error())
		return diags
	}
	return r.read(ctx, m)
}

func (r *configResource) read(ctx context.Context, m *configModel) diag.Diagnostics {
	var diags diag.Diagnostics
	secret, err := r.client.vault.Logical().ReadWithContext(ctx, r.client.path("config"))
	if err != nil || secret == nil {
		diags.AddError("Reading config", errorText(err, "no config"))
		return diags
	}
	m.DefaultEnvironment = types.StringValue(str(secret.Data["default_environment"]))
	m.DefaultMinRemaining = types.Int64Value(num(secret.Data["default_min_remaining"]))
	m.RequestTimeout = types.Int64Value(num(secret.Data["request_timeout"]))
	return diags
}

func (r *configResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	r.apply(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

func (r *configResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	r.apply(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

// apply writes the planned config and keeps what the engine reads back.
func (r *configResource) apply(ctx context.Context, plan tfsdk.Plan, state *tfsdk.State, diags *diag.Diagnostics) {
	var m configModel
	if diags.Append(plan.Get(ctx, &m)...); diags.HasError() {
		return
	}
	diags.Append(r.write(ctx, &m)...)
	diags.Append(state.Set(ctx, &m)...)
}

func (r *configResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m configModel
	if resp.Diagnostics.Append(req.State.Get(ctx, &m)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.read(ctx, &m)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *configResource) Delete(ctx context.Context, _ resource.DeleteRequest, resp *resource.DeleteResponse) {
	if _, err := r.client.vault.Logical().DeleteWithContext(ctx, r.client.path("config")); err != nil {
		resp.Diagnostics.AddError("Deleting config", err.Error())
	}
}

func errorText(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

var _ resource.ResourceWithConfigure = (*configResource)(nil)
