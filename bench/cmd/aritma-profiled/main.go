// Command aritma-profiled is the Aritma engine exactly as main.go serves it,
// plus a pprof server on $BENCH_PPROF_ADDR. It exists only for the
// benchmarks (make bench) and is never shipped.
package main

import (
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	"github.com/aritma/vault-plugin-secrets-aritma/aritma"
	"github.com/aritma/vault-plugin-secrets-aritma/bench/internal/profiling"
)

func main() {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: os.Stderr, JSONFormat: true})
	if err := profiling.Serve(); err != nil {
		logger.Warn("no profile server", "error", err) // the plugin works without it
	}
	apiClientMeta := &api.PluginAPIClientMeta{}
	flags := apiClientMeta.FlagSet()
	if err := flags.Parse(os.Args[1:]); err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: aritma.Factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig()),
		Logger:             logger,
	})
	if err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
