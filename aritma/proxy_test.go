package aritma

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// connectProxy is a forward proxy for https: it tunnels CONNECT requests
// with a Proxy-Authorization header, and refuses anything else (a plain
// http request would travel through it in clear). tunnels holds the local
// address of each tunnel's connection to the server.
func connectProxy(t *testing.T) (*httptest.Server, *sync.Map) {
	t.Helper()
	var tunnels sync.Map
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Header.Get("Proxy-Authorization") == "" {
			http.Error(w, "CONNECT with credentials only", http.StatusBadRequest)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		tunnels.Store(upstream.LocalAddr().String(), true)
		w.WriteHeader(http.StatusOK)
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() { _, _ = io.Copy(upstream, client); upstream.Close() }()
		go func() { _, _ = io.Copy(client, upstream); client.Close() }()
	}))
	t.Cleanup(proxy.Close)
	return proxy, &tunnels
}

// An environment's proxy_url carries its token requests; reads hide the
// proxy's password.
func TestProxyURL_CarriesTokenRequests(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeTLSAuthServer(t)
	proxy, tunnels := connectProxy(t)
	proxyURL := "http://user:pr0xy-pass@" + proxy.Listener.Addr().String()

	e.mustWrite(t, "environments/fake", map[string]interface{}{
		"token_url": srv.tokenURL(), "ca_cert": serverCAPEM(srv.Server), "proxy_url": proxyURL,
	})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "fake", "client_id": "c", "client_secret": "s"})
	e.readToken(t, "r")
	if srv.count() != 1 {
		t.Fatalf("the server saw %d requests, want 1", srv.count())
	}
	if _, tunnelled := tunnels.Load(srv.request(0).RemoteAddr); !tunnelled {
		t.Errorf("the token request came from %s, not through a proxy tunnel", srv.request(0).RemoteAddr)
	}
	if got := e.do(t, logical.ReadOperation, "environments/fake", nil).Data["proxy_url"]; got != "http://user:xxxxx@"+proxy.Listener.Addr().String() {
		t.Errorf("proxy_url reads as %v, want the password hidden", got)
	}

	resp := e.write(t, "environments/fake", map[string]interface{}{"proxy_url": "ftp://proxy.internal"})
	if resp == nil || !resp.IsError() || resp.Error().Error() != `proxy_url must use http, https or socks5, got "ftp"` {
		t.Errorf("bad proxy_url: %v", respError(resp))
	}
}

// Without proxy_url, the standard proxy variables apply.
func TestProxyURL_DefaultsToEnvironmentVariables(t *testing.T) {
	client, err := newHTTPClient(&environmentEntry{}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	proxy := client.Transport.(*http.Transport).Proxy
	if reflect.ValueOf(proxy).Pointer() != reflect.ValueOf(http.ProxyFromEnvironment).Pointer() {
		t.Error("the transport does not use http.ProxyFromEnvironment")
	}
}
