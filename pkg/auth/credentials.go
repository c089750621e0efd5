package auth

import (
	"encoding/base64"
	"strings"
)

// ParseBasic parses the credentials of an Authorization or
// Proxy-Authorization value "Basic <base64(user:password)>" (RFC 7617
// §2; the scheme is case-insensitive, RFC 9110 §11.1).
func ParseBasic(v string) (user, password string, ok bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	return user, password, ok
}

// ParseBearer parses "Bearer <token>" (RFC 6750 §2.1).
func ParseBearer(v string) (token string, ok bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(rest)
	return token, token != ""
}
