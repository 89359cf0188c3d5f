package aritma

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/oauth2"
)

// retryable tells whether a failed attempt may succeed if repeated, and how
// long the server asked to wait (Retry-After), if it did.
func retryable(err error) (bool, time.Duration) {
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		if rerr.Response == nil {
			return false, 0
		}
		code := rerr.Response.StatusCode
		if code == http.StatusTooManyRequests || code >= 500 {
			return true, parseRetryAfter(rerr.Response.Header.Get("Retry-After"), time.Now())
		}
		return false, 0
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false, 0
	}
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	var recordErr tls.RecordHeaderError
	var nerr net.Error
	switch {
	case errors.As(err, &certErr), errors.As(err, &alert), errors.As(err, &recordErr):
		return false, 0 // a TLS handshake refused on either side will be refused again
	case errors.As(err, &nerr) && nerr.Timeout():
		return false, 0 // the time limit is spent
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return true, 0 // refused, reset, closed before answering
	}
	_, cutShort := answerCutShort(err)
	return cutShort, 0
}

// answerCutShort tells an answer cut short (a reset mid-body), which the
// oauth2 library reports only as text, and gives the rest of that text.
func answerCutShort(err error) (string, bool) {
	return strings.CutPrefix(err.Error(), "oauth2: cannot fetch token: ")
}

// parseRetryAfter reads Retry-After (RFC 9110 section 10.2.3): seconds, or
// an HTTP date.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if seconds, err := strconv.Atoi(value); err == nil {
		return max(time.Duration(seconds)*time.Second, 0)
	}
	if at, err := http.ParseTime(value); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}

// withNote appends to an error's message, keeping its HTTP status.
func withNote(err error, note string) error {
	if g, ok := err.(*grantError); ok {
		noted := *g
		noted.coded = logical.CodedError(g.Code(), g.Error()+note)
		return &noted
	}
	if coded, ok := err.(logical.HTTPCodedError); ok {
		return logical.CodedError(coded.Code(), err.Error()+note)
	}
	return fmt.Errorf("%w%s", err, note)
}

// upstreamError is a failure of the authorization server or the way to it:
// 502 (504 for timeouts), which Vault's clients retry.
func upstreamError(msg string) error { return logical.CodedError(http.StatusBadGateway, msg) }

// refusalError is the authorization server refusing the role's request
// (invalid_client, invalid_scope, ...): 400, because the role's settings must
// change first, and a 5xx would make Vault's clients and agents repeat a
// request the server will refuse again.
func refusalError(msg string) error { return logical.CodedError(http.StatusBadRequest, msg) }

// Failure classes of a grant, as the role's status counts them.
const (
	failRefused = "refused" // the server refused the request (4xx other than 429)
	failServer  = "server"  // the server failed (5xx, 429, a redirect, not a token response)
	failNetwork = "network" // no answer: refused, reset, DNS, TLS
	failTimeout = "timeout" // the time limit passed
)

var failureClasses = []string{failRefused, failServer, failNetwork, failTimeout}

// grantError is a described grant failure: the reader's message and status,
// and for the role's status its class and the server's error code and
// description (scrubbed), never the request.
type grantError struct {
	coded       logical.HTTPCodedError
	class       string
	status      int // the server's HTTP status, 0 without an answer
	code        string
	description string
}

func (e *grantError) Error() string { return e.coded.Error() }
func (e *grantError) Code() int     { return e.coded.Code() }

// describeGrantError turns a failed grant into a message for the reader. It
// carries the status and the server's RFC 6749 section 5.2 error and
// error_description, never the request or the raw response body.
// scrub cleans the text the server chose (error, error_description).
func describeGrantError(err error, tokenURL string, timeout time.Duration, scrub func(string) string) error {
	if _, ok := err.(*grantError); ok {
		return err
	}
	if coded, ok := err.(logical.HTTPCodedError); ok {
		return &grantError{coded: coded, class: failServer} // described already (parseToken)
	}
	var rerr *oauth2.RetrieveError
	if errors.As(err, &rerr) {
		msg := describeRetrieveError(rerr, tokenURL, scrub)
		g := &grantError{class: failServer, code: scrub(rerr.ErrorCode), description: scrub(rerr.ErrorDescription)}
		if rerr.Response != nil {
			g.status = rerr.Response.StatusCode
		}
		if isRefusal(rerr) {
			g.coded, g.class = refusalError(msg).(logical.HTTPCodedError), failRefused
		} else {
			g.coded = upstreamError(msg).(logical.HTTPCodedError)
		}
		return g
	}
	var nerr net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()) {
		return &grantError{class: failTimeout, coded: logical.CodedError(http.StatusGatewayTimeout,
			fmt.Sprintf("token request to %s timed out after %s", tokenURL, timeout)).(logical.HTTPCodedError)}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return &grantError{class: failNetwork, coded: upstreamError(fmt.Sprintf("token request to %s failed: %v", tokenURL, uerr.Err)).(logical.HTTPCodedError)}
	}
	if rest, cut := answerCutShort(err); cut {
		return &grantError{class: failNetwork, coded: upstreamError(fmt.Sprintf("token request to %s failed while reading the answer: %s", tokenURL, rest)).(logical.HTTPCodedError)}
	}
	// The oauth2 library's own parse errors ("oauth2: cannot parse json: ...").
	return &grantError{class: failServer, coded: upstreamError(fmt.Sprintf("the answer from %s is not a valid token response: %s",
		tokenURL, strings.TrimPrefix(err.Error(), "oauth2: "))).(logical.HTTPCodedError)}
}

// isRefusal tells a refusal of this client's request (4xx, or an OAuth error
// code on a 200) from the server failing; 429 Too Many Requests is the server
// failing to keep up.
func isRefusal(rerr *oauth2.RetrieveError) bool {
	if rerr.Response == nil {
		return rerr.ErrorCode != ""
	}
	code := rerr.Response.StatusCode
	switch {
	case code == http.StatusTooManyRequests:
		return false
	case code >= 400 && code < 500:
		return true
	case code >= 200 && code < 300:
		return rerr.ErrorCode != ""
	}
	return false
}

func describeRetrieveError(rerr *oauth2.RetrieveError, tokenURL string, scrub func(string) string) string {
	status := "an error"
	if rerr.Response != nil {
		status = rerr.Response.Status
	}
	msg := fmt.Sprintf("token request to %s failed: %s", tokenURL, status)
	if rerr.ErrorCode != "" {
		msg += ": " + scrub(rerr.ErrorCode)
		if rerr.ErrorDescription != "" {
			msg += ": " + scrub(rerr.ErrorDescription)
		}
		return msg
	}
	if rerr.Response == nil {
		return msg
	}
	if code := rerr.Response.StatusCode; code >= 300 && code < 400 {
		return msg + fmt.Sprintf(" (a redirect to %q; token endpoints are never followed across redirects)",
			rerr.Response.Header.Get("Location"))
	}
	contentType, _, _ := mime.ParseMediaType(rerr.Response.Header.Get("Content-Type"))
	if contentType == "" {
		contentType = "undeclared content type"
	}
	return msg + fmt.Sprintf(" with %d bytes of %s and no OAuth error code", len(rerr.Body), contentType)
}

// refusedClient reports whether the server refused the client itself
// (invalid_client, RFC 6749 section 5.2): for a client secret, the one a
// bank no longer takes after a rotation.
func refusedClient(err error) bool {
	var g *grantError
	return errors.As(err, &g) && g.class == failRefused && g.code == "invalid_client"
}
