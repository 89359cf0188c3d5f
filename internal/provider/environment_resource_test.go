package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The TLS client key is sent on create and on a version bump only, never
// kept in state; a proxy password read back hidden does not drift.
func TestEnvironment_WriteOnlyKeyAndHiddenProxyPassword(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	config := map[string]tftypes.Value{
		"name": s("bank"), "token_url": s("https://bank.example/token"),
		"tls_client_cert": s("CERT"), "tls_client_key_wo": s("KEY-v1"), "tls_client_key_wo_version": n(1),
		"proxy_url": s("http://user:pr0xy@proxy.example:3128"),
	}
	// The engine reads a proxy password back hidden.
	state := p.applyTo("aritma_environment", nil, config)
	if got := vault.write(0)["tls_client_key"]; got != "KEY-v1" {
		t.Errorf("create sent tls_client_key %v, want the key", got)
	}
	if !state["tls_client_key_wo"].IsNull() {
		t.Error("the state holds tls_client_key_wo")
	}
	if !state["proxy_url"].Equal(config["proxy_url"]) {
		t.Errorf("proxy_url in state = %v, want the configured one (the engine reads it back with the password hidden)", state["proxy_url"])
	}
	config["request_timeout"] = n(20)
	p.applyTo("aritma_environment", p.last, config)
	if _, sent := vault.write(1)["tls_client_key"]; sent {
		t.Error("an update without a version bump sent the key")
	}
	config["tls_client_key_wo"], config["tls_client_key_wo_version"] = s("KEY-v2"), n(2)
	state = p.applyTo("aritma_environment", p.last, config)
	if got := vault.write(2)["tls_client_key"]; got != "KEY-v2" {
		t.Errorf("a version bump sent %v, want the new key", got)
	}
	for name, v := range state {
		if strings.Contains(v.String(), "KEY-v") {
			t.Errorf("the state's %s holds the key", name)
		}
	}
}

// Every field the engine's environments/<name> path takes is an attribute
// of aritma_environment (a secret as <field>_wo), or listed as left out.
func TestEnvironment_CoversEveryEngineField(t *testing.T) {
	assertCoversEngineFields(t, "aritma_environment", "environments/x", map[string]string{"name": "the resource's name attribute"})
}

// Every field of the engine's config is an attribute of aritma_config.
func TestConfig_CoversEveryEngineField(t *testing.T) {
	assertCoversEngineFields(t, "aritma_config", "config", nil)
}
