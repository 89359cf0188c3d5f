// Command vault-plugin-secrets-aritma serves the Aritma secrets engine to Vault.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/plugin"

	"github.com/aritma/vault-plugin-secrets-aritma/aritma"
)

func main() {
	// Vault stops its plugins itself, through go-plugin. A SIGTERM sent to
	// the whole process group (systemd's default KillMode=control-group)
	// would otherwise kill the plugin while Vault is still serving requests
	// during its shutdown; go-plugin ignores SIGINT for the same reason.
	signal.Ignore(syscall.SIGTERM)

	// JSON on stderr is what Vault reads from a plugin and re-logs at the
	// level given; Vault's own log level filters it.
	logger := hclog.New(&hclog.LoggerOptions{
		Level:      hclog.Trace,
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if err := serveProfiles(); err != nil {
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
		// For Vault versions without plugin AutoMTLS.
		TLSProviderFunc: api.VaultPluginTLSProvider(apiClientMeta.GetTLSConfig()),
		Logger:          logger,
	})
	if err != nil {
		logger.Error("plugin shutting down", "error", err)
		os.Exit(1)
	}
}
