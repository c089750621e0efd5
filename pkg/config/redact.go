package config

import (
	"reflect"
	"strings"
)

// RedactedValue replaces secrets in Redacted's output.
const RedactedValue = "REDACTED"

// sensitiveWords mark a key or header name whose value is a secret.
var sensitiveWords = []string{"password", "passwd", "secret", "token", "apikey", "api-key", "api_key", "authorization", "cookie", "credential"}

func sensitive(name string) bool {
	name = strings.ToLower(name)
	for _, w := range sensitiveWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// Redacted returns a deep copy of c that is safe to print or serve from the
// admin API: non-empty strings are replaced with RedactedValue in every
// field tagged `redact:"true"`, in every field whose key names a secret
// (password, secret, token, …), and in string maps under keys that name a
// secret (route header matches on Authorization, Cookie, X-Api-Token, …).
// File paths of TLS keys are not secrets and are kept. c is not modified;
// nil gives nil.
func Redacted(c *Config) *Config {
	if c == nil {
		return nil
	}
	out := new(Config)
	copier{redact: true}.copy(reflect.ValueOf(out).Elem(), reflect.ValueOf(c).Elem(), false)
	return out
}

// Clone returns a deep copy of c: no slice, map or pointer is shared.
func (c *Config) Clone() *Config {
	if c == nil {
		return nil
	}
	out := new(Config)
	copier{}.copy(reflect.ValueOf(out).Elem(), reflect.ValueOf(c).Elem(), false)
	return out
}

// copier deep-copies values of the schema.
type copier struct {
	// redact reports whether secrets are replaced with RedactedValue.
	redact bool
}

// copy deep-copies src into dst (settable, same type); secret says src's
// strings are secrets.
func (c copier) copy(dst, src reflect.Value, secret bool) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		c.copy(p.Elem(), src.Elem(), secret)
		dst.Set(p)
	case reflect.Struct:
		t := src.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("koanf"), ",")
			s := secret || c.redact && (sf.Tag.Get("redact") == "true" || sensitive(name))
			c.copy(dst.Field(i), src.Field(i), s)
		}
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			c.copy(s.Index(i), src.Index(i), secret)
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		stringValues := src.Type().Elem().Kind() == reflect.String && src.Type().Key().Kind() == reflect.String
		for _, k := range src.MapKeys() {
			e := reflect.New(src.Type().Elem()).Elem()
			c.copy(e, src.MapIndex(k), secret || c.redact && stringValues && sensitive(k.String()))
			m.SetMapIndex(k, e)
		}
		dst.Set(m)
	case reflect.String:
		if secret && src.Len() > 0 {
			dst.SetString(RedactedValue)
			return
		}
		dst.Set(src)
	default:
		dst.Set(src)
	}
}
