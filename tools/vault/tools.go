//go:build tools

// Package tools pins the Vault server that the end-to-end tests and the demo run.
package tools

import _ "github.com/hashicorp/vault"
