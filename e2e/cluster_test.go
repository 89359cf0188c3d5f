//go:build e2e && reliability

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
)

// Failover on a real three-node Vault cluster with integrated storage
// (raft): readers keep reading tokens through all three nodes while the
// active node is stopped (SIGTERM), and later, the next active node crashes
// (SIGKILL); each time a standby takes over within a bound, reads succeed
// again, no role, environment or config is lost, and the stopped node comes
// back, unseals, rejoins as a voter and serves reads.
//
// The readers behave as a client given the three addresses would: each read
// goes to the next node, and a node that failed a read is skipped for
// readerSkip. Every read sent counts as attempted, and every failed read is
// counted. The unavailability is the longest gap between two successful
// reads, whichever nodes served them; the failed reads are bounded too.
func TestReliability_ClusterFailover(t *testing.T) {
	const (
		readers    = 6
		readerSkip = 500 * time.Millisecond
		readerRest = 20 * time.Millisecond // between reads, to leave CPU to raft
	)
	post := oauthClient{ID: "post-client", Secret: randomSecret("failover-post-secret"), AuthMethod: "client_secret_post", Scope: "api bankservice", Format: "jwt"}
	basic := oauthClient{ID: "basic-client", Secret: randomSecret("failover-basic-secret"), AuthMethod: "client_secret_basic", Scope: "api", Format: "opaque"}

	c := startRaftCluster(t, 3)
	leader := asVault(c.Nodes[0])
	leader.registerPlugin(t, "v0.1.0")
	leader.enableAritma(t)
	// A private_key_jwt role whose key is born in Vault: after the failover
	// the new active node must sign with the same key, from storage.
	leader.write(t, "aritma/roles/signed", map[string]interface{}{
		"environment": "development", "client_id": "jwt-client", "auth_method": "private_key_jwt",
		"signing_algorithm": "ES256", "scopes": "api",
	})
	_, jwks := fetchJWKS(t, leader, "signed")
	oauth := startOAuthServerConfig(t, oauthConfig{
		TokenTTL: 3600,
		Clients:  []oauthClient{post, basic},
		RawClients: []map[string]interface{}{{
			"client_id": "jwt-client", "token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "ES256",
			"jwks": jwks, "scope": "api", "access_token_format": "jwt",
		}},
	})
	leader.write(t, "aritma/environments/development", map[string]interface{}{"token_url": oauth.TokenEndpoint})
	leader.write(t, "aritma/environments/bank-basic", map[string]interface{}{"token_url": oauth.TokenEndpoint, "auth_method": "client_secret_basic"})
	leader.write(t, "aritma/roles/payments", map[string]interface{}{
		"environment": "development", "client_id": post.ID, "client_secret": post.Secret, "scopes": "bankservice",
	})
	leader.write(t, "aritma/roles/identity", map[string]interface{}{
		"environment": "bank-basic", "client_id": basic.ID, "client_secret": basic.Secret, "scopes": "api",
	})
	leader.write(t, "aritma/config", map[string]interface{}{"default_environment": "development"})
	roles := []string{"payments", "identity", "signed"}

	before := dumpMount(t, leader.Client)
	// Every node answers with the same configuration (standbys forward).
	for _, n := range c.Nodes {
		if got := dumpMount(t, n.Client); !sameDump(got, before) {
			t.Fatalf("%s answers a different configuration before the failover:\nleader %v\n%s %v", n.Name, before, n.Name, got)
		}
	}
	// One token per role before the readers start: the first grants.
	for _, role := range roles {
		if _, err := leader.Client.Logical().Read("aritma/token/" + role); err != nil {
			t.Fatalf("first read of %s: %v", role, err)
		}
	}

	// Status and metrics read on any node are the active node's: standbys
	// forward every request, so Prometheus may scrape any node.
	activeStatus, err := leader.Client.Logical().Read("aritma/roles/payments/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		st, err := n.Client.Logical().Read("aritma/roles/payments/status")
		if err != nil || st.Data["node"] != activeStatus.Data["node"] || fmt.Sprint(st.Data["grants"]) != "1" {
			t.Errorf("%s's status of payments is not the active node's: %v (err %v), want node %v with 1 grant", n.Name, st, err, activeStatus.Data["node"])
		}
		body := scrapeMetrics(t, asVault(n), leader.Token)
		if !strings.Contains(body, `aritma_grants_total{environment="development",outcome="granted",role="payments"} 1`) {
			t.Errorf("%s's metrics are not the active node's:\n%s", n.Name, body)
		}
	}

	seen := newReadLog(len(c.Nodes))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range readers {
		clients := make([]*api.Client, len(c.Nodes))
		for j, n := range c.Nodes {
			clients[j] = readerClient(t, n.Addr, leader.Token)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runReader(ctx, seen, clients, roles, i, readerSkip, readerRest)
		}()
	}
	stopReaders := sync.OnceFunc(func() { cancel(); wg.Wait() })
	t.Cleanup(stopReaders)
	started := time.Now()

	// Warm up: every node serves reads.
	waitFor(t, 60*time.Second, "every node to serve reads", func() bool {
		for n := range c.Nodes {
			if seen.successesSince(n, started) == 0 {
				return false
			}
		}
		return time.Since(started) > 3*time.Second
	})

	// Two outages of the active node: a graceful stop (SIGTERM), then a
	// crash (SIGKILL, as a power loss would). Each time a standby must take
	// over within maxGap, and the stopped node rejoin and serve reads.
	type outage struct {
		name, signal string
		end          func(*testservers.Node)
		maxGap       time.Duration
	}
	lost := 0
	var active *testservers.Node
	for _, o := range []outage{
		{"stop", "SIGTERM", func(n *testservers.Node) { n.Stop() }, 5 * time.Second},
		{"crash", "SIGKILL", func(n *testservers.Node) { n.Kill() }, 10 * time.Second},
	} {
		var err error
		if active, err = c.ActiveNode(); err != nil {
			t.Fatal(err)
		}
		stopAt := time.Now()
		o.end(active)
		t.Logf("%s: %s sent to the active node %s's process group; it exited after %.1fs",
			o.name, o.signal, active.Name, time.Since(stopAt).Seconds())

		var newActive *testservers.Node
		waitFor(t, 120*time.Second, "a new active node", func() bool {
			for _, n := range c.Nodes {
				if n == active {
					continue
				}
				if l, err := n.Client.Sys().Leader(); err == nil && l.IsSelf {
					newActive = n
					return true
				}
			}
			return false
		})
		t.Logf("%s: %s is active %.1fs after the %s", o.name, newActive.Name, time.Since(stopAt).Seconds(), o.signal)
		waitFor(t, 120*time.Second, "reads to succeed again through both remaining nodes", func() bool {
			for i, n := range c.Nodes {
				if n != active && seen.successesSince(i, stopAt) == 0 {
					return false
				}
			}
			return true
		})
		time.Sleep(3 * time.Second)

		after := dumpMount(t, newActive.Client)
		if n := entriesLost(before, after); n != 0 || !sameDump(before, after) {
			lost += n
			t.Errorf("%s: the configuration changed across the failover (%d entries lost or changed):\nbefore %v\nafter  %v", o.name, n, before, after)
		}

		// Restart the stopped node: it unseals with the same key and rejoins.
		restartAt := time.Now()
		if err := c.Restart(active); err != nil {
			t.Fatal(err)
		}
		servers, err := c.WaitRejoined(active, newActive)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: raft configuration after the rejoin, read through %s: %+v", o.name, active.Name, servers)
		activeIdx := c.Index(active)
		waitFor(t, 60*time.Second, "the restarted node to serve reads", func() bool {
			return seen.successesSince(activeIdx, restartAt) > 0
		})
		t.Logf("%s: %s rejoined and served a read %.1fs after its restart", o.name, active.Name, time.Since(restartAt).Seconds())
		time.Sleep(2 * time.Second)

		seen.mu.Lock()
		gap, gapFrom := seen.longestGap(stopAt, time.Now())
		failed, attempted := seen.failedSince(stopAt), seen.attempts
		seen.mu.Unlock()
		t.Logf("%s: longest time without a successful read %.2fs, from %.2fs after the %s; %d failed reads since it",
			o.name, gap.Seconds(), gapFrom.Sub(stopAt).Seconds(), o.signal, failed)
		recordFigure(t, "failover_"+o.name+"_unavailable_seconds", roundTenth(gap.Seconds()))
		recordFigure(t, "failover_"+o.name+"_failed_reads", failed)
		if gap > o.maxGap {
			t.Errorf("%s: no read succeeded for %.1fs, over the %s bound", o.name, gap.Seconds(), o.maxGap)
		}
		if failed*10 > attempted {
			t.Errorf("%s: %d reads failed since the %s, over a tenth of the %d attempted in the run", o.name, failed, o.signal, attempted)
		}
	}
	stopReaders()
	ended := time.Now()

	for _, n := range c.Nodes {
		if got := dumpMount(t, n.Client); !sameDump(got, before) {
			t.Errorf("%s answers a different configuration after the rejoin:\nbefore %v\nafter  %v", n.Name, before, got)
		}
	}
	// The restarted node serves a read itself, as the CLI would.
	secret := asVault(active).readTokenCLI(t, active.Token, "signed")
	if in := oauth.verify(t, secret.Data["access_token"].(string)); !in.Active || in.ClientID != "jwt-client" {
		t.Errorf("the token read through the restarted node: the server saw %+v", in)
	}

	seen.mu.Lock()
	defer seen.mu.Unlock()
	stats := oauth.stats(t)
	t.Logf("%d readers over %.0fs: %d reads attempted, %d succeeded (by node %v), %d got an expired token",
		readers, ended.Sub(started).Seconds(), seen.attempts, seen.successes, seen.byNode, seen.expired)
	for class, n := range seen.errors {
		t.Logf("failed reads: %d × %s (first: %s)", n, class, seen.firstError[class])
	}
	for _, role := range roles {
		t.Logf("role %s: %d distinct tokens read, the server saw %d grants for its client", role, len(seen.tokens[role]), stats.ByClient[clientOf(role)])
	}
	recordFigure(t, "failover_reads_attempted", seen.attempts)
	recordFigure(t, "failover_reads_succeeded", seen.successes)
	recordFigure(t, "failover_config_entries_lost", lost)

	if seen.expired != 0 {
		t.Errorf("%d reads got an expired token (or a lease under a second)", seen.expired)
	}
	if stats.Failures != 0 {
		t.Errorf("the OAuth server saw failed grants: %+v", stats)
	}
	// The new active node starts with an empty token cache, so every role
	// has a token from each active node (the private_key_jwt one signed with
	// the key from storage), and each is alive at the server.
	for _, role := range roles {
		if len(seen.tokens[role]) < 2 {
			t.Errorf("role %s: %d distinct tokens read, want one from each active node", role, len(seen.tokens[role]))
		}
		for token := range seen.tokens[role] {
			if in := oauth.verify(t, token); !in.Active {
				t.Errorf("role %s: a token handed out during the run is not active at the server", role)
			}
		}
	}

	secrets := map[string]string{"post client secret": post.Secret, "basic client secret": basic.Secret}
	for role, tokens := range seen.tokens {
		i := 0
		for token := range tokens {
			i++
			secrets[fmt.Sprintf("access token %d of %s", i, role)] = token
		}
	}
	assertNoSecrets(t, secrets, append(c.LogFiles(), oauth.LogPath))
}

func clientOf(role string) string {
	return map[string]string{"payments": "post-client", "identity": "basic-client", "signed": "jwt-client"}[role]
}

func roundTenth(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

// startRaftCluster starts a raft cluster of size nodes that the test stops
// when it ends, and prints the nodes' logs if it failed.
func startRaftCluster(t *testing.T, size int) *testservers.RaftCluster {
	t.Helper()
	requireVault(t)
	c, err := testservers.StartRaftCluster(vaultBin, t.TempDir(), size)
	if c != nil {
		t.Cleanup(c.Stop)
		t.Cleanup(func() {
			if t.Failed() {
				for _, n := range c.Nodes {
					t.Log(tail(n.LogPath))
				}
			}
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// asVault is a node as the e2e helpers take it.
func asVault(n *testservers.Node) *vaultServer { return &vaultServer{n.Vault} }

// readerClient is an API client for one node that neither retries nor
// waits long: each read is one attempt.
func readerClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = "http://" + addr
	cfg.MaxRetries = 0
	cfg.Timeout = 10 * time.Second
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken(token)
	return client
}

// readLog is what the readers saw.
type readLog struct {
	mu         sync.Mutex
	attempts   int
	successes  int
	expired    int
	byNode     []int
	okTimes    [][]time.Time // by node
	errors     map[string]int
	firstError map[string]string
	tokens     map[string]map[string]bool // role -> tokens read
	failTimes  []time.Time                // when each failed read was answered
}

func newReadLog(nodes int) *readLog {
	return &readLog{
		byNode:     make([]int, nodes),
		okTimes:    make([][]time.Time, nodes),
		errors:     map[string]int{},
		firstError: map[string]string{},
		tokens:     map[string]map[string]bool{},
	}
}

// runReader reads until ctx ends, starting at node first and role first,
// moving to the next node after every read and skipping a node for skip
// after it failed a read.
func runReader(ctx context.Context, seen *readLog, clients []*api.Client, roles []string, first int, skip, rest time.Duration) {
	skipUntil := make([]time.Time, len(clients))
	node := first % len(clients)
	for i := first; ctx.Err() == nil; i++ {
		// The next node not skipped; if all are, wait for the first to be due.
		next := -1
		for k := range clients {
			j := (node + k) % len(clients)
			if !time.Now().Before(skipUntil[j]) {
				next = j
				break
			}
		}
		if next < 0 {
			soonest := 0
			for j := range clients {
				if skipUntil[j].Before(skipUntil[soonest]) {
					soonest = j
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(skipUntil[soonest])):
			}
			next = soonest
		}
		node = (next + 1) % len(clients)
		role := roles[i%len(roles)]
		secret, err := clients[next].Logical().ReadWithContext(ctx, "aritma/token/"+role)
		received := time.Now()
		if ctx.Err() != nil {
			return // the run ended mid-request
		}
		if err == nil && (secret == nil || secret.Data["access_token"] == nil) {
			err = errors.New("no token in the response")
		}
		seen.record(next, clients[next].Address(), role, secret, err, received)
		if err != nil {
			skipUntil[next] = received.Add(skip)
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(rest):
		}
	}
}

func (l *readLog) record(node int, addr, role string, secret *api.Secret, err error, received time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	if err != nil {
		class := errorClass(err)
		if msg := err.Error(); strings.Contains(msg, "http://") && !strings.Contains(msg, addr+"/") {
			// A standby that cannot forward redirects (307) to the node it
			// last knew as active, and the client follows.
			class += " after a redirect"
		}
		l.errors[class]++
		l.failTimes = append(l.failTimes, received)
		if _, ok := l.firstError[class]; !ok {
			l.firstError[class] = fmt.Sprintf("node%d: %s", node+1, strings.Join(strings.Fields(err.Error()), " "))
		}
		return
	}
	l.successes++
	l.byNode[node]++
	l.okTimes[node] = append(l.okTimes[node], received)
	if !checkLeasedToken(secret, received) {
		l.expired++
	}
	token := secret.Data["access_token"].(string)
	if l.tokens[role] == nil {
		l.tokens[role] = map[string]bool{}
	}
	if !l.tokens[role][token] {
		l.tokens[role][token] = true
		noteSecret(token)
	}
}

// errorClass names a failed read by its kind: the HTTP status, or the
// transport error.
func errorClass(err error) string {
	var respErr *api.ResponseError
	switch {
	case errors.As(err, &respErr):
		return fmt.Sprintf("HTTP %d", respErr.StatusCode)
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "connection reset"):
		return "connection closed"
	case strings.Contains(err.Error(), "deadline exceeded"), strings.Contains(err.Error(), "Timeout"):
		return "timeout"
	default:
		return "other"
	}
}

// failedSince counts the reads that failed since since. Call with l.mu held.
func (l *readLog) failedSince(since time.Time) int {
	n := 0
	for _, at := range l.failTimes {
		if !at.Before(since) {
			n++
		}
	}
	return n
}

func (l *readLog) successesSince(node int, since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	times := l.okTimes[node]
	return len(times) - sort.Search(len(times), func(i int) bool { return !times[i].Before(since) })
}

// longestGap is the longest time between two successful reads, or between
// the start or end of the run and the nearest one, and when it began. Call
// with l.mu held.
func (l *readLog) longestGap(start, end time.Time) (time.Duration, time.Time) {
	all := []time.Time{start, end}
	for _, times := range l.okTimes {
		all = append(all, times...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Before(all[j]) })
	var longest time.Duration
	from := start
	for i := 1; i < len(all); i++ {
		if gap := all[i].Sub(all[i-1]); gap > longest {
			longest, from = gap, all[i-1]
		}
	}
	return longest, from
}

// dumpMount reads every config, environment and role the mount holds,
// through client, one JSON document per path.
func dumpMount(t *testing.T, client *api.Client) map[string]string {
	t.Helper()
	dump := map[string]string{}
	for _, list := range []string{"aritma/roles", "aritma/environments"} {
		secret, err := client.Logical().List(list)
		if err != nil || secret == nil {
			t.Fatalf("list %s through %s: %v", list, client.Address(), err)
		}
		for _, key := range secret.Data["keys"].([]interface{}) {
			path := list + "/" + key.(string)
			s, err := client.Logical().Read(path)
			if err != nil || s == nil {
				t.Fatalf("read %s through %s: %v", path, client.Address(), err)
			}
			raw, _ := json.Marshal(s.Data)
			dump[path] = string(raw)
		}
	}
	cfg, err := client.Logical().Read("aritma/config")
	if err != nil || cfg == nil {
		t.Fatalf("read aritma/config through %s: %v", client.Address(), err)
	}
	raw, _ := json.Marshal(cfg.Data)
	dump["aritma/config"] = string(raw)
	return dump
}

// entriesLost counts the entries of before that after lacks or holds changed.
func entriesLost(before, after map[string]string) int {
	lost := 0
	for path, entry := range before {
		if after[path] != entry {
			lost++
		}
	}
	return lost
}

func sameDump(a, b map[string]string) bool {
	return len(a) == len(b) && entriesLost(a, b) == 0
}
