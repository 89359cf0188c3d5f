package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// metrics_role_limit is written as 1000 when unset and as configured
// otherwise; an engine that does not read it back (one from before it)
// leaves the value in state, rather than a 0 that would plan an update at
// every run.
func TestConfig_MetricsRoleLimitDefaultAndOlderEngine(t *testing.T) {
	vault := newFakeVault(t)
	p := newProtocolTest(t, vault)
	state := p.applyTo("aritma_config", nil, nil)
	if got := vault.write(0)["metrics_role_limit"]; got != float64(1000) {
		t.Errorf("a config without metrics_role_limit sent %v, want the default 1000", got)
	}
	if !state["metrics_role_limit"].Equal(n(1000)) {
		t.Errorf("metrics_role_limit in state = %v, want 1000", state["metrics_role_limit"])
	}

	state = p.applyTo("aritma_config", p.last, map[string]tftypes.Value{"metrics_role_limit": n(50)})
	if got := vault.write(1)["metrics_role_limit"]; got != float64(50) {
		t.Errorf("metrics_role_limit = 50 sent %v, want 50", got)
	}
	if !state["metrics_role_limit"].Equal(n(50)) {
		t.Errorf("metrics_role_limit in state = %v, want 50", state["metrics_role_limit"])
	}

	vault.mu.Lock()
	delete(vault.roles["aritma/config"], "metrics_role_limit")
	vault.mu.Unlock()
	read, err := p.server.ReadResource(context.Background(), &tfprotov6.ReadResourceRequest{TypeName: "aritma_config", CurrentState: p.last})
	if err != nil || len(read.Diagnostics) > 0 {
		t.Fatalf("read: %v %v", err, read.Diagnostics)
	}
	if got := p.decodeAs(p.types["aritma_config"], read.NewState)["metrics_role_limit"]; !got.Equal(n(50)) {
		t.Errorf("after a read from an engine without metrics_role_limit, it is %v in state, want 50 kept", got)
	}
}
