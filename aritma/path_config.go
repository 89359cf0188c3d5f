package aritma

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const configPath = "config"

// Defaults that apply while config is unset.
const (
	defaultEnvironmentName = "production"
	defaultMinRemaining    = time.Minute
	defaultRequestTimeout  = 10 * time.Second
	// defaultMetricsRoleLimit keeps a scrape of a mount with thousands of
	// roles to a few thousand series.
	defaultMetricsRoleLimit = 1000
)

// Bounds for durations users set.
const (
	maxMinRemaining     = 24 * time.Hour
	minRequestTimeout   = time.Second
	maxRequestTimeout   = 5 * time.Minute
	maxMetricsRoleLimit = 100000
)

// configEntry holds mount-wide defaults.
type configEntry struct {
	// DefaultEnvironment is the environment of roles written without one.
	DefaultEnvironment string `json:"default_environment"`
	// DefaultMinRemaining is the min_remaining of roles written without one.
	DefaultMinRemaining time.Duration `json:"default_min_remaining"`
	// RequestTimeout bounds each token request to environments that set none.
	RequestTimeout time.Duration `json:"request_timeout"`
	// MetricsRoleLimit is how many roles get series of their own in
	// metrics; the rest are summed per environment as role "_other".
	MetricsRoleLimit int `json:"metrics_role_limit"`
}

// forGrants is the config as grants see it: without what only metrics
// read, whose changes keep every cached token and source.
func (c configEntry) forGrants() configEntry {
	c.MetricsRoleLimit = 0
	return c
}

func defaultConfig() *configEntry {
	return &configEntry{
		DefaultEnvironment:  defaultEnvironmentName,
		DefaultMinRemaining: defaultMinRemaining,
		RequestTimeout:      defaultRequestTimeout,
		MetricsRoleLimit:    defaultMetricsRoleLimit,
	}
}

// getConfig returns the stored config, or the defaults when none is stored.
func getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	entry, err := s.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg := defaultConfig()
	if entry == nil {
		return cfg, nil
	}
	if err := entry.DecodeJSON(cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return cfg, nil
}

func pathConfig(b *backend) *framework.Path {
	configure := writeOperation(b.pathConfigWrite, "Set the mount-wide defaults.")
	configure.DisplayAttrs = &framework.DisplayAttributes{OperationVerb: "configure"}
	reset := writeOperation(b.pathConfigDelete, "Reset the mount-wide defaults to the built-in ones.")
	reset.DisplayAttrs = &framework.DisplayAttributes{OperationSuffix: "configuration"}
	return &framework.Path{
		Pattern: configPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefix,
		},
		Fields: map[string]*framework.FieldSchema{
			"default_environment": {
				Type:        framework.TypeString,
				Description: "Environment of roles written without one. Must exist.",
				Default:     defaultEnvironmentName,
			},
			"default_min_remaining": {
				Type:        framework.TypeDurationSecond,
				Description: "min_remaining of roles written without one. " + minRemainingHelp,
				Default:     int(defaultMinRemaining.Seconds()),
			},
			"request_timeout": {
				Type:        framework.TypeDurationSecond,
				Description: "Time limit of one token request, for environments that set none.",
				Default:     int(defaultRequestTimeout.Seconds()),
			},
			"metrics_role_limit": {
				Type: framework.TypeInt,
				Description: fmt.Sprintf("How many roles get series of their own in metrics (in name order); the others are "+
					"summed per environment under role=\"_other\", so that a scrape stays small with thousands of roles. "+
					"0 to %d.", maxMetricsRoleLimit),
				Default: defaultMetricsRoleLimit,
			},
		},
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "configuration"},
				Summary:      "Read the mount-wide defaults (the built-in defaults while none are written).",
			},
			logical.CreateOperation: configure,
			logical.UpdateOperation: configure,
			logical.DeleteOperation: reset,
		},
		HelpSynopsis:    pathConfigHelpSynopsis,
		HelpDescription: pathConfigHelpDescription,
	}
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	entry, err := req.Storage.Get(ctx, configPath)
	return entry != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"default_environment":   cfg.DefaultEnvironment,
		"default_min_remaining": int64(cfg.DefaultMinRemaining.Seconds()),
		"request_timeout":       int64(cfg.RequestTimeout.Seconds()),
		"metrics_role_limit":    cfg.MetricsRoleLimit,
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()

	cfg, err := getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	before := cfg.forGrants()
	if v, ok := d.GetOk("default_environment"); ok {
		name := v.(string)
		env, err := getEnvironment(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if env == nil {
			return logical.ErrorResponse("default_environment: environment %q does not exist; %s", name, environmentHint), nil
		}
		cfg.DefaultEnvironment = name
	}
	if v, ok := d.GetOk("default_min_remaining"); ok {
		cfg.DefaultMinRemaining = time.Duration(v.(int)) * time.Second
		if err := validateDuration(cfg.DefaultMinRemaining, 0, maxMinRemaining); err != nil {
			return logical.ErrorResponse("default_min_remaining %v", err), nil
		}
	}
	if v, ok := d.GetOk("request_timeout"); ok {
		cfg.RequestTimeout = time.Duration(v.(int)) * time.Second
		if err := validateDuration(cfg.RequestTimeout, minRequestTimeout, maxRequestTimeout); err != nil {
			return logical.ErrorResponse("request_timeout %v", err), nil
		}
	}
	if v, ok := d.GetOk("metrics_role_limit"); ok {
		cfg.MetricsRoleLimit = v.(int)
		if cfg.MetricsRoleLimit < 0 || cfg.MetricsRoleLimit > maxMetricsRoleLimit {
			return logical.ErrorResponse("metrics_role_limit must be between 0 and %d, got %d", maxMetricsRoleLimit, cfg.MetricsRoleLimit), nil
		}
	}

	entry, err := logical.StorageEntryJSON(configPath, cfg)
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("writing config: %w", err)
	}
	if cfg.forGrants() != before {
		b.dropAllSources()
	}
	return nil, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	if err := req.Storage.Delete(ctx, configPath); err != nil {
		return nil, fmt.Errorf("deleting config: %w", err)
	}
	b.dropAllSources()
	return nil, nil
}

const operationPrefix = "aritma"

const pathConfigHelpSynopsis = `Mount-wide defaults for roles and token requests.`

const pathConfigHelpDescription = `
Defaults that apply to the whole mount. Reading an unwritten config answers
with the built-in defaults; deleting it restores them.

  default_environment     environment of roles written without one ("production")
  default_min_remaining   min_remaining of roles written without one (1m)
  request_timeout         time limit of a token request, for environments
                          that set none (10s)
  metrics_role_limit      roles with series of their own in metrics (1000);
                          the others are summed as role "_other"

default_environment and default_min_remaining are copied into a role when it
is created; changing them later does not move existing roles.
`
