package testservers

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
)

// ConnectProxy is a forward proxy for https on 127.0.0.1: it tunnels
// CONNECT requests and refuses anything else (a plain http request would
// travel through it in clear). It remembers the local address of each
// tunnel's connection to the server, so that a server can tell a request
// that came through it.
type ConnectProxy struct {
	*httptest.Server
	tunnels sync.Map
}

// StartConnectProxy starts a proxy; requireAuth refuses CONNECTs without a
// Proxy-Authorization header. Close stops it.
func StartConnectProxy(requireAuth bool) *ConnectProxy {
	p := &ConnectProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || (requireAuth && r.Header.Get("Proxy-Authorization") == "") {
			http.Error(w, "CONNECT only, with credentials where asked", http.StatusBadRequest)
			return
		}
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		p.tunnels.Store(upstream.LocalAddr().String(), true)
		w.WriteHeader(http.StatusOK)
		client, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			upstream.Close()
			return
		}
		go func() { _, _ = io.Copy(upstream, client); upstream.Close() }()
		go func() { _, _ = io.Copy(client, upstream); client.Close() }()
	}))
	return p
}

// Tunnelled reports whether a connection from remoteAddr, as the server saw
// it, came through one of the proxy's tunnels.
func (p *ConnectProxy) Tunnelled(remoteAddr string) bool {
	_, ok := p.tunnels.Load(remoteAddr)
	return ok
}

// Tunnels counts the tunnels the proxy opened.
func (p *ConnectProxy) Tunnels() int {
	n := 0
	p.tunnels.Range(func(any, any) bool { n++; return true })
	return n
}
