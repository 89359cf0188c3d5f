// Command probe is the ceiling probe of make bench: an external secrets
// plugin, built on the same SDK framework and served the same way as the
// Aritma engine, whose read of token/<name> returns a constant leased secret
// and does nothing else. Whatever it costs per read is what Vault, the plugin
// protocol and the framework cost any plugin that creates a lease; the
// engine's token read is measured against it. It is never shipped.
//
// Its answer has the engine's four fields, with an access_token of
// $PROBE_TOKEN_BYTES bytes (the benchmark sets the length of the real
// tokens), and a one-hour, non-renewable lease.
package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

const secretType = "probe"

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	n, err := strconv.Atoi(os.Getenv("PROBE_TOKEN_BYTES"))
	if err != nil || n <= 0 {
		n = 704
	}
	data := map[string]interface{}{"access_token": strings.Repeat("x", n), "token_type": "Bearer",
		"expires_at": "2099-01-01T00:00:00Z", "scope": "api"}
	b := &framework.Backend{
		Help:        "Ceiling probe for benchmarks: a constant leased secret.",
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "token/" + framework.GenericNameRegex("name"),
			Fields:  map[string]*framework.FieldSchema{"name": {Type: framework.TypeString, Description: "Ignored."}},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
						return &logical.Response{Data: data, Secret: &logical.Secret{
							LeaseOptions: logical.LeaseOptions{TTL: time.Hour, MaxTTL: time.Hour},
							InternalData: map[string]interface{}{"secret_type": secretType},
						}}, nil
					},
				},
			},
		}},
		Secrets: []*framework.Secret{{
			Type:   secretType,
			Fields: map[string]*framework.FieldSchema{},
			Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return nil, nil
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func main() {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		logger.Error("probe shutting down", "error", err)
		os.Exit(1)
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig()),
		Logger:             logger,
	})
	if err != nil {
		logger.Error("probe shutting down", "error", err)
		os.Exit(1)
	}
}
