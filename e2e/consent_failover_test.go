//go:build e2e && reliability

package e2e

import (
	"strings"
	"testing"
	"time"
)

// A customer's refresh token rotates on the active node of a three-node
// raft cluster, which then stops: the node that takes over refreshes with
// the newest refresh token from storage. The bank sees no reused token, and
// a standby's read is served by the active node.
func TestReliability_CustomerFailoverAfterRotation(t *testing.T) {
	kari := bankCustomer{"kari", randomSecret("kari-password")}
	appCallback := "http://127.0.0.1:9/app/callback"
	bank, client := consentBank(t, []string{appCallback}, kari)
	c := startRaftCluster(t, 3)
	leader := asVault(c.Nodes[0])
	leader.setupAccounts(t, bank, client, "authorization_code", appCallback)
	redirect := consentAt(t, bank, leader.authorize(t, "kari"), kari, true)
	leader.mustCLI(t, "write", "aritma/creds/accounts/kari", "callback_url="+redirect.String())

	// A rotation on the active node, read through a standby (which forwards).
	standby := asVault(c.Nodes[1])
	time.Sleep(2 * time.Second)
	if _, out, err := standby.readCredential(t, "kari", "min_remaining=28"); err != nil {
		t.Fatalf("read through a standby: %v\n%s", err, out)
	}
	if s := bank.stats(t); s.ByGrantType["refresh_token"] != 1 {
		t.Fatalf("%d refreshes before the failover, want 1", s.ByGrantType["refresh_token"])
	}

	active, err := c.ActiveNode()
	if err != nil {
		t.Fatal(err)
	}
	active.Stop()
	var next *vaultServer
	waitFor(t, 30*time.Second, "a standby to take over", func() bool {
		n, err := c.ActiveNode()
		if err == nil && n != active {
			next = asVault(n)
			return true
		}
		return false
	})
	// The plugin on the new active node has no token in memory: it loads
	// the credential and refreshes with the rotated token.
	time.Sleep(2 * time.Second)
	var out string
	waitFor(t, 30*time.Second, "the new active node to serve the credential", func() bool {
		_, out, err = next.readCredential(t, "kari", "min_remaining=28")
		return err == nil
	})
	s := bank.stats(t)
	if s.ByGrantType["refresh_token"] != 2 || s.RefreshReuseDetected != 0 {
		t.Errorf("after the failover: %d refreshes, %d reused refresh tokens; want 2 and 0", s.ByGrantType["refresh_token"], s.RefreshReuseDetected)
	}
	if status := next.credentialStatus(t, "kari"); status["status"] != "active" {
		t.Errorf("status on the new active node: %v", status)
	}
	if strings.Contains(out, "needs consent") {
		t.Errorf("the new active node says the customer must consent again:\n%s", out)
	}
	assertNoSecrets(t, map[string]string{"client secret": client.Secret, "kari's password": kari.password},
		append(c.LogFiles(), bank.LogPath))
}
