package testservers

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// OAuthClient is a client registered at the OAuth server.
type OAuthClient struct {
	ID         string `json:"client_id"`
	Secret     string `json:"client_secret"`
	AuthMethod string `json:"token_endpoint_auth_method"`
	Scope      string `json:"scope"`
	Format     string `json:"access_token_format"` // jwt or opaque
}

// OAuthConfig is what the OAuth server issues, and to whom.
type OAuthConfig struct {
	TokenTTL int // seconds
	Clients  []OAuthClient
	// RawClients are client metadata as oidc-provider takes it, for
	// private_key_jwt and mTLS clients (jwks, jwks_uri, subject DNs).
	RawClients []map[string]interface{}
	// Extra goes into the server's config as is (tls, client_auth_methods).
	Extra map[string]interface{}
	// ServerCA is the CA of the server's https certificate, if it has one.
	ServerCA *x509.CertPool
}

// OAuthServer is e2e/oauthserver/server.mjs, oidc-provider configured for
// the client_credentials grant, with its endpoints as it announced them.
type OAuthServer struct {
	Issuer                string        `json:"issuer"`
	TokenEndpoint         string        `json:"token_endpoint"`
	IntrospectionEndpoint string        `json:"introspection_endpoint"`
	RevocationEndpoint    string        `json:"revocation_endpoint"`
	StatsEndpoint         string        `json:"stats_endpoint"`
	ResourceEndpoint      string        `json:"resource_endpoint"`
	LogPath               string        `json:"-"`
	Clients               []OAuthClient `json:"-"`
	// HTTP talks to the server; for an https server it trusts its CA.
	HTTP *http.Client `json:"-"`
	proc *Process
}

// StartOAuthServer starts script (e2e/oauthserver/server.mjs) with node,
// its config and log in dir, and waits for the line in which it announces
// its endpoints.
func StartOAuthServer(script, dir string, c OAuthConfig) (*OAuthServer, error) {
	all := []interface{}{}
	for _, client := range c.Clients {
		all = append(all, client)
	}
	for _, client := range c.RawClients {
		all = append(all, client)
	}
	cfg := map[string]interface{}{"port": 0, "token_ttl": c.TokenTTL, "clients": all}
	for k, v := range c.Extra {
		cfg[k] = v
	}
	config, _ := json.Marshal(cfg)
	configPath := filepath.Join(dir, "oauth.json")
	if err := os.WriteFile(configPath, config, 0o600); err != nil {
		return nil, err
	}
	srv := &OAuthServer{LogPath: filepath.Join(dir, "oauth.log"), Clients: c.Clients, HTTP: http.DefaultClient}
	if c.ServerCA != nil {
		srv.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: c.ServerCA}}}
	}
	stdoutR, stdoutW := io.Pipe()
	proc, err := Start(srv.LogPath, stdoutW, nil, "node", script, configPath)
	if err != nil {
		return nil, err
	}
	srv.proc = proc
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdoutR).ReadString('\n')
		if err == nil {
			err = json.Unmarshal([]byte(line), srv)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdoutR)
	}()
	select {
	case err := <-ready:
		if err != nil {
			return srv, fmt.Errorf("the OAuth server did not start: %v\n%s", err, Tail(srv.LogPath, 30))
		}
	case <-time.After(30 * time.Second):
		return srv, fmt.Errorf("the OAuth server did not start in 30s\n%s", Tail(srv.LogPath, 30))
	}
	return srv, nil
}

// Stop stops the server.
func (s *OAuthServer) Stop() {
	if s.proc != nil {
		s.proc.Stop()
	}
}

// OAuthStats is what the server counted since it started.
type OAuthStats struct {
	Grants   int            `json:"grants"`
	ByClient map[string]int `json:"by_client"`
	Failures int            `json:"failures"`
	Errors   map[string]int `json:"errors"`
}

// Stats reads the server's counters.
func (s *OAuthServer) Stats() (OAuthStats, error) {
	var st OAuthStats
	resp, err := s.HTTP.Get(s.StatsEndpoint)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
