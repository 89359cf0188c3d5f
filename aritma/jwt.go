package aritma

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// jwtTimes reads the exp and, if present, iat claims (RFC 7519 sections
// 4.1.4 and 4.1.6) of a JWT access token; iat is zero when absent. The
// signature is not checked: the engine is the token's holder, not its
// audience, and uses the claims only to know when to stop handing the token
// out when the token response carries no expires_in.
func jwtTimes(token string) (exp, iat time.Time, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}, errors.New("not a JWT: expected three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, time.Time{}, errors.New("not a JWT: payload is not base64url")
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
		Iat *json.Number `json:"iat"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return time.Time{}, time.Time{}, errors.New("not a JWT: payload is not a JSON object")
	}
	if claims.Exp == nil {
		return time.Time{}, time.Time{}, errors.New("JWT has no exp claim")
	}
	if exp, err = numericDate(*claims.Exp); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("JWT exp claim %v", err)
	}
	if claims.Iat != nil {
		if iat, err = numericDate(*claims.Iat); err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("JWT iat claim %v", err)
		}
	}
	return exp, iat, nil
}

// numericDate reads a NumericDate: seconds since the epoch, at least one
// (a smaller one would read as the epoch itself).
func numericDate(n json.Number) (time.Time, error) {
	v, err := n.Float64()
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 1 || v > math.MaxInt32*4 {
		return time.Time{}, errors.New("is not a valid NumericDate")
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
