package aritma

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateTokenURL(t *testing.T) {
	for name, tc := range map[string]struct {
		url     string
		wantErr string
	}{
		"aritma production":   {url: "https://id.aritma.io/connect/token"},
		"with port and query": {url: "https://auth.bank.example:8443/oauth2/token?p=b2c"},
		"http loopback v4":    {url: "http://127.0.0.1:8080/connect/token"},
		"http loopback v6":    {url: "http://[::1]:8080/token"},
		"http localhost":      {url: "http://localhost/token"},
		"empty":               {wantErr: "is required"},
		"http remote":         {url: "http://id.aritma.io/connect/token", wantErr: `must use https; http is allowed only for loopback addresses (localhost, 127.0.0.1, ::1), got host "id.aritma.io"`},
		"http lookalike":      {url: "http://127.0.0.1.example.com/token", wantErr: "must use https"},
		"ftp":                 {url: "ftp://id.aritma.io/token", wantErr: `must use https, got scheme "ftp"`},
		"relative":            {url: "/connect/token", wantErr: "must be an absolute URL"},
		"no scheme":           {url: "id.aritma.io/connect/token", wantErr: "must be an absolute URL"},
		"credentials in URL":  {url: "https://client:secret@id.aritma.io/connect/token", wantErr: "must not contain a user name or password"},
		"fragment":            {url: "https://id.aritma.io/connect/token#x", wantErr: "must not contain a fragment"},
		"unparseable":         {url: "https://id.aritma.io:port/", wantErr: "is not a valid URL"},
	} {
		t.Run(name, func(t *testing.T) {
			err := validateTokenURL(tc.url)
			checkErr(t, err, tc.wantErr)
			if err != nil && strings.Contains(err.Error(), "client:secret") {
				t.Errorf("error quotes the URL's credentials: %v", err)
			}
		})
	}
}

func TestNormalizeScopes(t *testing.T) {
	for name, tc := range map[string]struct {
		in      []string
		want    []string
		wantErr string
	}{
		"aritma api":         {in: []string{"api"}, want: []string{"api"}},
		"comma list":         {in: []string{"api", "bankservice"}, want: []string{"api", "bankservice"}},
		"space-delimited":    {in: []string{"api bankservice  IDENTITY"}, want: []string{"api", "bankservice", "IDENTITY"}},
		"duplicates dropped": {in: []string{"api", "api bankservice"}, want: []string{"api", "bankservice"}},
		"urls and colons":    {in: []string{"https://api.bank.example/accounts.read", "payments:write"}, want: []string{"https://api.bank.example/accounts.read", "payments:write"}},
		"empty":              {in: nil, want: nil},
		"quote":              {in: []string{`a"b`}, wantErr: `"a\"b" is not a valid scope`},
		"backslash":          {in: []string{`a\b`}, wantErr: "is not a valid scope"},
		"non-ascii":          {in: []string{"betaling-ø"}, wantErr: "is not a valid scope"},
		"control":            {in: []string{"a\x01b"}, wantErr: "is not a valid scope"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := normalizeScopes(tc.in)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("normalizeScopes(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestValidateClientCredentials(t *testing.T) {
	for name, tc := range map[string]struct {
		err     error
		wantErr string
	}{
		"client id":            {err: validateClientID("SettlementExampleClient")},
		"uuid client id":       {err: validateClientID("0f8fad5b-d9cb-469f-a165-70867728950e")},
		"empty client id":      {err: validateClientID(""), wantErr: "is required"},
		"control in client id": {err: validateClientID("a\nb"), wantErr: "control characters"},
		"long client id":       {err: validateClientID(strings.Repeat("a", 1025)), wantErr: "longer than 1024"},
		"secret":               {err: validateClientSecret("s3cret with spaces/and:colons")},
		"empty secret":         {err: validateClientSecret(""), wantErr: "is required"},
		"long secret":          {err: validateClientSecret(strings.Repeat("x", 4097)), wantErr: "longer than 4096"},
	} {
		t.Run(name, func(t *testing.T) { checkErr(t, tc.err, tc.wantErr) })
	}
}

func TestValidateDuration(t *testing.T) {
	for name, tc := range map[string]struct {
		d       time.Duration
		wantErr string
	}{
		"low bound":  {d: time.Second},
		"high bound": {d: time.Minute},
		"below":      {d: 0, wantErr: "must be between 1s and 1m0s, got 0s"},
		"above":      {d: time.Hour, wantErr: "must be between 1s and 1m0s, got 1h0m0s"},
	} {
		t.Run(name, func(t *testing.T) { checkErr(t, validateDuration(tc.d, time.Second, time.Minute), tc.wantErr) })
	}
}

func TestParseCACert(t *testing.T) {
	cert := testCertPEM(t)
	for name, tc := range map[string]struct {
		pem      string
		wantPool bool
		wantErr  string
	}{
		"empty means system roots": {pem: "  "},
		"one certificate":          {pem: cert, wantPool: true},
		"bundle":                   {pem: cert + cert, wantPool: true},
		"not PEM":                  {pem: "hello", wantErr: "holds no PEM certificate"},
		"private key":              {pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", wantErr: `holds a "PRIVATE KEY" PEM block`},
		"garbage certificate":      {pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", wantErr: "does not parse"},
		"trailing text":            {pem: cert + "oops", wantErr: "has text after the last PEM certificate"},
	} {
		t.Run(name, func(t *testing.T) {
			pool, err := parseCACert(tc.pem)
			checkErr(t, err, tc.wantErr)
			if (pool != nil) != tc.wantPool {
				t.Errorf("pool = %v, want a pool: %v", pool, tc.wantPool)
			}
		})
	}
}

func TestValidateTokenParamsAndResources(t *testing.T) {
	for name, tc := range map[string]struct {
		err     error
		wantErr string
	}{
		"extra param":         {err: validateTokenParams(map[string]string{"tenant": "acme"})},
		"reserved scope":      {err: validateTokenParams(map[string]string{"scope": "x"}), wantErr: `may not set "scope"`},
		"reserved secret":     {err: validateTokenParams(map[string]string{"client_secret": "x"}), wantErr: `may not set "client_secret"`},
		"empty name":          {err: validateTokenParams(map[string]string{"": "x"}), wantErr: "empty parameter name"},
		"resource":            {err: validateResources([]string{"https://api.aritma.io/banking"})},
		"urn resource":        {err: validateResources([]string{"urn:bank:payments"})},
		"relative resource":   {err: validateResources([]string{"/banking"}), wantErr: "is not an absolute URI"},
		"resource w/fragment": {err: validateResources([]string{"https://api.aritma.io/#x"}), wantErr: "must not contain a fragment"},
	} {
		t.Run(name, func(t *testing.T) { checkErr(t, tc.err, tc.wantErr) })
	}
}

// checkErr fails unless err is nil (wantErr "") or contains wantErr.
func checkErr(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case wantErr != "" && err == nil:
		t.Errorf("no error; want one containing %q", wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("error = %q, want it to contain %q", err, wantErr)
	}
}

// testCertPEM makes a self-signed CA certificate.
func testCertPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
