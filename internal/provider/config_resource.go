package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64default"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// configResource is aritma_config: the mount's defaults, one per mount.
// Destroying it restores the built-in defaults.
type configResource struct{ engineObject }

func newConfigResource() resource.Resource {
	return &configResource{engineObject{noun: "config"}}
}

type configModel struct {
	Mount               types.String `tfsdk:"mount"`
	DefaultEnvironment  types.String `tfsdk:"default_environment"`
	DefaultMinRemaining types.Int64  `tfsdk:"default_min_remaining"`
	RequestTimeout      types.Int64  `tfsdk:"request_timeout"`
	MetricsRoleLimit    types.Int64  `tfsdk:"metrics_role_limit"`
}

func (r *configResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_config"
}

func (r *configResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "The Aritma engine's mount-wide defaults. Destroying it restores the built-in ones.",
		Attributes: map[string]schema.Attribute{
			"mount": mountAttribute(),
			"default_environment": schema.StringAttribute{Optional: true, Computed: true, Default: stringdefault.StaticString("production"),
				Description: "Environment of roles written without one."},
			"default_min_remaining": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(60),
				Description: "min_remaining, in seconds, of roles written without one."},
			"request_timeout": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(10),
				Description: "Seconds a token request may take, for environments that set none."},
			"metrics_role_limit": schema.Int64Attribute{Optional: true, Computed: true, Default: int64default.StaticInt64(1000),
				Description: "How many roles get metric series of their own (in name order); the others are summed per environment as role \"_other\". 0 to 100000."},
		},
	}
}

// apply writes plan and reads the config back into it.
func (r *configResource) apply(ctx context.Context, plan *configModel) diag.Diagnostics {
	r.resolveMount(&plan.Mount)
	diags := r.write(ctx, plan.Mount, types.StringNull(), map[string]interface{}{
		"default_environment":   plan.DefaultEnvironment.ValueString(),
		"default_min_remaining": plan.DefaultMinRemaining.ValueInt64(),
		"request_timeout":       plan.RequestTimeout.ValueInt64(),
		"metrics_role_limit":    plan.MetricsRoleLimit.ValueInt64(),
	})
	if diags.HasError() {
		return diags
	}
	read, d := r.readWritten(ctx, plan.Mount, types.StringNull())
	if diags.Append(d...); read != nil {
		setConfig(plan, read)
	}
	return diags
}

func setConfig(m *configModel, d map[string]interface{}) {
	m.DefaultEnvironment = types.StringValue(str(d["default_environment"]))
	m.DefaultMinRemaining = types.Int64Value(num(d["default_min_remaining"]))
	m.RequestTimeout = types.Int64Value(num(d["request_timeout"]))
	// An engine before metrics_role_limit neither reads it back nor keeps
	// it: the planned value stays, rather than a 0 that would never match.
	if v, ok := d["metrics_role_limit"]; ok {
		m.MetricsRoleLimit = types.Int64Value(num(v))
	}
}

func (r *configResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	applyPlan(ctx, req.Plan, req.Config, nil, &resp.State, &resp.Diagnostics, func(plan, _, _ *configModel) diag.Diagnostics {
		return r.apply(ctx, plan)
	})
}

func (r *configResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	applyPlan(ctx, req.Plan, req.Config, &req.State, &resp.State, &resp.Diagnostics, func(plan, _, _ *configModel) diag.Diagnostics {
		return r.apply(ctx, plan)
	})
}

// Read: the engine always has a config (its defaults when none is
// written), so a read never finds it gone.
func (r *configResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	refreshState(ctx, req, resp, func(m *configModel) (bool, diag.Diagnostics) {
		r.resolveMount(&m.Mount)
		read, diags := r.readWritten(ctx, m.Mount, types.StringNull())
		if read != nil {
			setConfig(m, read)
		}
		return !diags.HasError(), diags
	})
}

func (r *configResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state configModel
	if resp.Diagnostics.Append(req.State.Get(ctx, &state)...); resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(r.delete(ctx, state.Mount, types.StringNull())...)
}

func errorText(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

var _ resource.ResourceWithConfigure = (*configResource)(nil)
