package aritma

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/aritma/vault-plugin-secrets-aritma/internal/testservers"
	"github.com/hashicorp/vault/sdk/logical"
)

// An environment's proxy_url carries its token requests; reads hide the
// proxy's password.
func TestProxyURL_CarriesTokenRequests(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeTLSAuthServer(t)
	proxy := testservers.StartConnectProxy(true)
	t.Cleanup(proxy.Close)
	proxyURL := "http://user:pr0xy-pass@" + proxy.Listener.Addr().String()

	e.mustWrite(t, "environments/fake", map[string]interface{}{
		"token_url": srv.tokenURL(), "ca_cert": serverCAPEM(srv.Server), "proxy_url": proxyURL,
	})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "fake", "client_id": "c", "client_secret": "s"})
	e.readToken(t, "r")
	if srv.count() != 1 {
		t.Fatalf("the server saw %d requests, want 1", srv.count())
	}
	if !proxy.Tunnelled(srv.request(0).RemoteAddr) {
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
