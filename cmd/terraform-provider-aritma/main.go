// Command terraform-provider-aritma serves the Aritma engine's provider to
// OpenTofu and Terraform (protocol 6).
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/provider"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	debug := flag.Bool("debug", false, "serve for a debugger (TF_REATTACH_PROVIDERS)")
	flag.Parse()
	quietUnlessLogging()
	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: provider.Address,
		Debug:   *debug,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// quietUnlessLogging turns the plugin SDK's own logs off when no log level
// is asked for. OpenTofu and Terraform then drop a provider's log lines,
// but the SDK would still format each at trace level: a third of the
// provider's CPU in a plan. Any TF_LOG setting keeps them as usual.
func quietUnlessLogging() {
	for _, env := range os.Environ() {
		if strings.HasPrefix(env, "TF_LOG") {
			return
		}
	}
	for _, env := range []string{"TF_LOG_SDK", "TF_LOG_SDK_PROTO", "TF_LOG_SDK_FRAMEWORK"} {
		_ = os.Setenv(env, "off")
	}
}
