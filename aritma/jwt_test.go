package aritma

import (
	"testing"
	"time"
)

func TestJWTTimes(t *testing.T) {
	for name, tc := range map[string]struct {
		token   string
		want    time.Time
		wantIat time.Time
		wantErr string
	}{
		"integer exp":    {token: testJWT(`{"exp":1663592081,"iss":"https://id-dev.zdata.no"}`), want: time.Unix(1663592081, 0)},
		"fractional exp": {token: testJWT(`{"exp":1663592081.5}`), want: time.Unix(1663592081, 500_000_000)},
		"padded payload": {token: "e30." + "eyJleHAiOjF9" + "=.sig", want: time.Unix(1, 0)},
		"opaque token":   {token: "2YotnFZFEjr1zCsicMWpAA", wantErr: "three dot-separated parts"},
		"bad base64":     {token: "a.!!!.c", wantErr: "not base64url"},
		"not JSON":       {token: testJWT(`nope`), wantErr: "not a JSON object"},
		"no exp":         {token: testJWT(`{"iss":"x"}`), wantErr: "no exp claim"},
		"string exp":     {token: testJWT(`{"exp":"soon"}`), wantErr: "not a JSON object"},
		"negative exp":   {token: testJWT(`{"exp":-5}`), wantErr: "not a valid NumericDate"},
		"absurd exp":     {token: testJWT(`{"exp":1e300}`), wantErr: "not a valid NumericDate"},
		"exp and iat":    {token: testJWT(`{"exp":1663592081,"iat":1663588481}`), want: time.Unix(1663592081, 0), wantIat: time.Unix(1663588481, 0)},
		"bad iat":        {token: testJWT(`{"exp":1663592081,"iat":-1}`), wantErr: "iat claim is not a valid NumericDate"},
	} {
		t.Run(name, func(t *testing.T) {
			exp, iat, err := jwtTimes(tc.token)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && (!exp.Equal(tc.want) || !iat.Equal(tc.wantIat)) {
				t.Errorf("jwtTimes = exp %s, iat %s; want %s, %s", exp, iat, tc.want, tc.wantIat)
			}
		})
	}
}
