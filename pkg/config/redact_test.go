package config

import (
	"reflect"
	"testing"
)

func TestRedacted(t *testing.T) {
	orig := loadFull(t).Config
	before := orig.Clone()
	r := Redacted(orig)
	if !reflect.DeepEqual(orig, before) {
		t.Fatal("Redacted modified its argument")
	}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "authorization header match", got: r.Routes[0].Match.Headers["Authorization"], want: RedactedValue},
		{name: "ordinary header match", got: r.Routes[0].Match.Headers["X-Env"], want: "prod"},
		{name: "upstream named like nothing secret", got: r.Upstreams["web"].TLS.ServerName, want: "web.internal"},
		{name: "original keeps the secret", got: orig.Routes[0].Match.Headers["Authorization"], want: "Bearer secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	// Everything else is equal.
	r.Routes[0].Match.Headers["Authorization"] = "Bearer secret"
	if !reflect.DeepEqual(r, orig) {
		t.Error("Redacted changed more than the secret")
	}
	// And shares nothing with the original.
	r.Routes[0].Match.Headers["X-Env"] = "changed"
	r.Listeners[0].Name = "changed"
	if orig.Routes[0].Match.Headers["X-Env"] != "prod" || orig.Listeners[0].Name != "http" {
		t.Error("Redacted shares memory with its argument")
	}
	if Redacted(nil) != nil {
		t.Error("Redacted(nil) != nil")
	}
}

func TestRedactByTagAndName(t *testing.T) {
	// The mechanism is driven by struct tags and key names, so that a
	// field added later is covered by tagging it.
	type inner struct {
		Plain string `koanf:"plain"`
	}
	type schema struct {
		Tagged      string            `koanf:"tagged" redact:"true"`
		Password    string            `koanf:"password"`
		APIToken    string            `koanf:"api_token"`
		Empty       string            `koanf:"client_secret"`
		Plain       string            `koanf:"plain"`
		Section     inner             `koanf:"section" redact:"true"`
		List        []string          `koanf:"list" redact:"true"`
		Headers     map[string]string `koanf:"headers"`
		CookieCount int               `koanf:"cookie_count"`
	}
	in := schema{
		Tagged: "a", Password: "b", APIToken: "c", Plain: "d",
		Section: inner{Plain: "e"}, List: []string{"f", ""},
		Headers:     map[string]string{"Cookie": "g", "X-Api-Key": "h", "Accept": "i"},
		CookieCount: 3,
	}
	var out schema
	copier{redact: true}.copy(reflect.ValueOf(&out).Elem(), reflect.ValueOf(in), false)
	want := schema{
		Tagged: RedactedValue, Password: RedactedValue, APIToken: RedactedValue, Plain: "d",
		Section: inner{Plain: RedactedValue}, List: []string{RedactedValue, ""},
		Headers:     map[string]string{"Cookie": RedactedValue, "X-Api-Key": RedactedValue, "Accept": "i"},
		CookieCount: 3,
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("redacted = %+v, want %+v", out, want)
	}
	var cloned schema
	copier{}.copy(reflect.ValueOf(&cloned).Elem(), reflect.ValueOf(in), false)
	if !reflect.DeepEqual(cloned, in) {
		t.Errorf("clone = %+v, want %+v", cloned, in)
	}
}
