package aritma

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// connectProxy is a forward proxy for https: it tunnels CONNECT requests
// with a Proxy-Authorization header, and refuses anything else (a plain
// http request would travel through it in clear).
func connectProxy(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var tunnels atomic.Int32
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
		tunnels.Add(1)
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
	if tunnels.Load() != 1 || srv.count() != 1 {
		t.Errorf("proxied %d connections, server saw %d requests; want 1 each", tunnels.Load(), srv.count())
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
