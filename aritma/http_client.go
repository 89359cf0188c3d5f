package aritma

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// newHTTPClient builds the client for an authorization server: its CA roots,
// a client certificate for mutual TLS, a proxy, a timeout, and no redirects.
// A redirect from a token endpoint would carry the client's credentials to
// another address.
func newHTTPClient(env *environmentEntry, cert *tls.Certificate, timeout time.Duration) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	pool, err := parseCACert(env.CACert)
	if err != nil {
		return nil, fmt.Errorf("ca_cert %v", err)
	}
	transport.TLSClientConfig.RootCAs = pool // nil: the system's roots
	if cert != nil {
		// Always present the certificate: Go's default would withhold one not
		// issued by a CA the server names, and self-signed certificates
		// (self_signed_tls_client_auth) never are.
		transport.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		}
	}
	// Without a proxy_url, the standard HTTPS_PROXY, HTTP_PROXY and NO_PROXY
	// variables apply (http.DefaultTransport's behaviour).
	if env.ProxyURL != "" {
		proxy, err := url.Parse(env.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("proxy_url %v", stripURL(err))
		}
		// Environment writes refuse a proxy for http endpoints; this keeps
		// one stored before that rule from sending credentials in clear.
		transport.Proxy = func(req *http.Request) (*url.URL, error) {
			if req.URL.Scheme != "https" {
				return nil, fmt.Errorf("refusing to send a %s request through proxy_url: only https goes through a proxy", req.URL.Scheme)
			}
			return proxy, nil
		}
	}
	return &http.Client{
		Transport: transport,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}, nil
}
