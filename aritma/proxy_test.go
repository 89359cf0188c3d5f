package aritma

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// An environment's proxy_url carries its token requests; reads hide the
// proxy's password.
func TestProxyURL_CarriesTokenRequests(t *testing.T) {
	e := newTestEnv(t)
	srv := newFakeAuthServer(t)
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy gets absolute-form request targets.
		if !r.URL.IsAbs() || r.Header.Get("Proxy-Authorization") == "" {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		target, _ := url.Parse(r.URL.Scheme + "://" + r.URL.Host)
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	proxyURL := "http://user:pr0xy-pass@" + proxy.Listener.Addr().String()

	e.mustWrite(t, "environments/fake", map[string]interface{}{"token_url": srv.tokenURL(), "proxy_url": proxyURL})
	e.mustWrite(t, "roles/r", map[string]interface{}{"environment": "fake", "client_id": "c", "client_secret": "s"})
	e.readToken(t, "r")
	if proxied.Load() != 1 || srv.count() != 1 {
		t.Errorf("proxied %d requests, server saw %d; want 1 each", proxied.Load(), srv.count())
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
