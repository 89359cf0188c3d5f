package testservers

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// ProviderSource is the provider's address in OpenTofu's registry.
const ProviderSource = "registry.opentofu.org/aritma/aritma"

// BuildProviderMirror builds terraform-provider-aritma from the repository
// at root into dir, laid out as a filesystem mirror holding version (0.1.0),
// so that tofu init installs it as it would from the registry.
func BuildProviderMirror(root, version, dir string) error {
	platform := runtime.GOOS + "_" + runtime.GOARCH
	out := filepath.Join(dir, ProviderSource, version, platform, "terraform-provider-aritma_v"+version)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out,
		"-ldflags", "-X main.version="+version, "./cmd/terraform-provider-aritma")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// WriteTofuCLIConfig writes an OpenTofu CLI configuration to path that
// installs each provider (registry.opentofu.org/hashicorp/vault, say) from
// its filesystem mirror and nothing from the network.
func WriteTofuCLIConfig(path string, mirrors map[string]string) error {
	var sources []string
	for source := range mirrors {
		sources = append(sources, source)
	}
	sort.Strings(sources)
	var b strings.Builder
	b.WriteString("provider_installation {\n")
	for _, source := range sources {
		fmt.Fprintf(&b, "  filesystem_mirror {\n    path    = %q\n    include = [%q]\n  }\n", mirrors[source], source)
	}
	fmt.Fprintf(&b, "  direct {\n    exclude = [%s]\n  }\n}\n", quoteAll(sources))
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func quoteAll(items []string) string {
	quoted := make([]string, len(items))
	for i, item := range items {
		quoted[i] = fmt.Sprintf("%q", item)
	}
	return strings.Join(quoted, ", ")
}
