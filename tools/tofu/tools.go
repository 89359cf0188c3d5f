//go:build tools

// Package tools pins OpenTofu, built by scripts/build-tofu.sh.
package tools

import _ "github.com/opentofu/opentofu/cmd/tofu"
