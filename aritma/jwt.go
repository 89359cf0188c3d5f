package aritma

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"
)

// jwtExpiry reads the exp claim (RFC 7519 section 4.1.4) of a JWT access token.
// The signature is not checked: the engine is the token's holder, not its
// audience, and uses exp only to know when to stop handing the token out
// when the token response carries no expires_in.
func jwtExpiry(token string) (time.Time, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT: expected three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, errors.New("not a JWT: payload is not base64url")
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return time.Time{}, errors.New("not a JWT: payload is not a JSON object")
	}
	if claims.Exp == nil {
		return time.Time{}, errors.New("JWT has no exp claim")
	}
	exp, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(exp) || math.IsInf(exp, 0) || exp <= 0 || exp > math.MaxInt32*4 {
		return time.Time{}, errors.New("JWT exp claim is not a valid NumericDate")
	}
	sec, frac := math.Modf(exp)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
