package testservers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/vault/api"
)

// RaftCluster is a Vault cluster on 127.0.0.1 with integrated storage, its
// nodes sharing one plugin directory and one audit log file.
type RaftCluster struct {
	Nodes     []*Node
	UnsealKey string
	RootToken string
	// OldLogs are the logs of node processes that were restarted.
	OldLogs   []string
	AuditPath string
}

// Node is one server of a RaftCluster.
type Node struct {
	*Vault
	Name string
	Dir  string
}

// StartRaftCluster starts size nodes in dir, initialises the first with one
// unseal key, joins the others to it, unseals them, waits until all are
// voters, and turns on a file audit device. On an error, the nodes started
// are in the returned cluster, for Stop.
func StartRaftCluster(bin, dir string, size int) (*RaftCluster, error) {
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	c := &RaftCluster{AuditPath: filepath.Join(dir, "audit.log")}
	for i := range size {
		name := fmt.Sprintf("node%d", i+1)
		nodeDir := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(nodeDir, "raft"), 0o700); err != nil {
			return c, err
		}
		addr, err := FreeAddr()
		if err != nil {
			return c, err
		}
		clusterAddr, err := FreeAddr()
		if err != nil {
			return c, err
		}
		configPath := filepath.Join(nodeDir, "vault.hcl")
		config := fmt.Sprintf(`
storage "raft" {
  path    = %q
  node_id = %q
  # What production deployments are told to use; the default (0, read as 5)
  # is for slow development machines and multiplies every raft timeout.
  performance_multiplier = 1
}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr         = "http://%s"
cluster_addr     = "https://%s"
plugin_directory = %q
disable_mlock    = true
log_level        = "debug"
`, filepath.Join(nodeDir, "raft"), name, addr, clusterAddr, addr, clusterAddr, pluginDir)
		if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
			return c, err
		}
		n := &Node{Name: name, Dir: nodeDir, Vault: &Vault{
			Bin: bin, Addr: addr, PluginDir: pluginDir,
			LogPath:   filepath.Join(nodeDir, "vault-1.log"),
			AuditPath: c.AuditPath,
			args:      []string{"server", "-config=" + configPath},
		}}
		c.Nodes = append(c.Nodes, n)
		if err := n.Start(); err != nil { // no token yet: waits for the API only
			return c, err
		}
	}

	first := c.Nodes[0]
	init, err := first.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return c, fmt.Errorf("vault operator init: %w", err)
	}
	c.UnsealKey, c.RootToken = init.Keys[0], init.RootToken
	if err := c.Unseal(first); err != nil {
		return c, err
	}
	if err := first.WaitActive(); err != nil {
		return c, err
	}
	for _, n := range c.Nodes[1:] {
		joined, err := n.Client.Sys().RaftJoin(&api.RaftJoinRequest{LeaderAPIAddr: "http://" + first.Addr})
		if err != nil || !joined.Joined {
			return c, fmt.Errorf("%s: vault operator raft join: %v %+v\n%s", n.Name, err, joined, Tail(n.LogPath, 30))
		}
		if err := c.Unseal(n); err != nil {
			return c, err
		}
		if err := c.WaitStandby(n, first); err != nil {
			return c, err
		}
	}
	if err := c.WaitVoters(first, len(c.Nodes), ""); err != nil {
		return c, err
	}
	return c, first.EnableFileAudit()
}

// Stop stops every node.
func (c *RaftCluster) Stop() {
	for _, n := range c.Nodes {
		n.Stop()
	}
}

// Unseal unseals n with the cluster's key and waits until it reports
// unsealed (a joining node finishes its join first).
func (c *RaftCluster) Unseal(n *Node) error {
	if _, err := n.Client.Sys().Unseal(c.UnsealKey); err != nil {
		return fmt.Errorf("%s: unseal: %w\n%s", n.Name, err, Tail(n.LogPath, 30))
	}
	n.Token = c.RootToken
	n.Client.SetToken(n.Token)
	return WaitFor(90*time.Second, n.Name+" to unseal", func() bool {
		st, err := n.Client.Sys().SealStatus()
		return err == nil && !st.Sealed
	})
}

// WaitStandby waits until n is a standby that knows leader as the active node.
func (c *RaftCluster) WaitStandby(n, leader *Node) error {
	return WaitFor(90*time.Second, n.Name+" to be a standby of "+leader.Name, func() bool {
		l, err := n.Client.Sys().Leader()
		return err == nil && l.HAEnabled && !l.IsSelf && l.LeaderAddress == "http://"+leader.Addr
	})
}

// WaitVoters waits until the raft configuration lists want voters and
// autopilot calls every server healthy; if node is set, it must be one of
// them (seen by autopilot, not just still listed).
func (c *RaftCluster) WaitVoters(leader *Node, want int, node string) error {
	var last string
	err := WaitFor(120*time.Second, fmt.Sprintf("%d healthy voters", want), func() bool {
		servers, err := RaftServers(leader.Client)
		voters := 0
		for _, s := range servers {
			if s.Voter {
				voters++
			}
		}
		state, stateErr := leader.Client.Sys().RaftAutopilotState()
		healthy := stateErr == nil && state.Healthy && len(state.Servers) == want
		if healthy && node != "" {
			s := state.Servers[node]
			healthy = s != nil && s.Healthy && s.Status == "voter"
		}
		last = fmt.Sprintf("configuration %+v (err %v), autopilot %v (err %v)", servers, err, state, stateErr)
		return err == nil && voters == want && healthy
	})
	if err != nil {
		return fmt.Errorf("%w: %s\n%s", err, last, Tail(leader.LogPath, 30))
	}
	return nil
}

// RaftServer is one server of the raft configuration.
type RaftServer struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

// RaftServers reads sys/storage/raft/configuration.
func RaftServers(client *api.Client) ([]RaftServer, error) {
	secret, err := client.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		return nil, err
	}
	if secret == nil {
		return nil, errors.New("no raft configuration")
	}
	raw, _ := json.Marshal(secret.Data["config"])
	var config struct {
		Servers []RaftServer `json:"servers"`
	}
	if err := json.Unmarshal(raw, &config); err != nil {
		return nil, err
	}
	return config.Servers, nil
}

// ActiveNode is the node that calls itself active.
func (c *RaftCluster) ActiveNode() (*Node, error) {
	for _, n := range c.Nodes {
		if l, err := n.Client.Sys().Leader(); err == nil && l.IsSelf {
			return n, nil
		}
	}
	return nil, errors.New("no node is active")
}

// Index is n's place in c.Nodes.
func (c *RaftCluster) Index(n *Node) int {
	for i, m := range c.Nodes {
		if m == n {
			return i
		}
	}
	panic("not a node of the cluster")
}

// Restart starts a stopped node again with a new log file and unseals it.
func (c *RaftCluster) Restart(n *Node) error {
	c.OldLogs = append(c.OldLogs, n.LogPath)
	n.Vault = &Vault{
		Bin: n.Bin, Addr: n.Addr, PluginDir: n.PluginDir,
		LogPath:   filepath.Join(n.Dir, fmt.Sprintf("vault-%d.log", len(c.OldLogs)+1)),
		AuditPath: n.AuditPath,
		args:      n.args,
	}
	if err := n.Start(); err != nil {
		return err
	}
	return c.Unseal(n)
}

// WaitRejoined waits until n is a standby of leader and a healthy voter,
// and returns the raft configuration as n sees it.
func (c *RaftCluster) WaitRejoined(n, leader *Node) ([]RaftServer, error) {
	if err := c.WaitStandby(n, leader); err != nil {
		return nil, err
	}
	if err := c.WaitVoters(leader, len(c.Nodes), n.Name); err != nil {
		return nil, err
	}
	return RaftServers(n.Client)
}

// LogFiles are every node's logs, old and current, and the audit log.
func (c *RaftCluster) LogFiles() []string {
	files := append([]string{c.AuditPath}, c.OldLogs...)
	for _, n := range c.Nodes {
		files = append(files, n.LogPath)
	}
	return files
}
