package redis_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/handoff-proxy/handoff/pkg/state/redis"
)

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		o       redis.Options
		wantErr string // substring; empty means valid
	}{
		{name: "url", o: redis.Options{URL: "redis://127.0.0.1:6379/0"}},
		{name: "tls url", o: redis.Options{URL: "rediss://user:pw@redis.example:6380/2"}},
		{name: "sentinel", o: redis.Options{Sentinel: redis.Sentinel{MasterName: "m", Addresses: []string{"127.0.0.1:26379"}}}},
		{name: "cluster", o: redis.Options{Cluster: redis.Cluster{Addresses: []string{"127.0.0.1:7000", "[::1]:7001"}}}},
		{name: "nothing", o: redis.Options{}, wantErr: "one of url, sentinel or cluster"},
		{name: "two", o: redis.Options{URL: "redis://a:1", Cluster: redis.Cluster{Addresses: []string{"b:1"}}}, wantErr: "only one"},
		{name: "http url", o: redis.Options{URL: "http://a:1"}, wantErr: "scheme"},
		{name: "bad db", o: redis.Options{URL: "redis://a:1/x"}, wantErr: "redis url"},
		{name: "password not echoed", o: redis.Options{URL: "redis://u:topsecret@a:1/x"}, wantErr: "redis url"},
		{name: "sentinel without name", o: redis.Options{Sentinel: redis.Sentinel{Addresses: []string{"a:1"}}}, wantErr: "master name"},
		{name: "cluster address without port", o: redis.Options{Cluster: redis.Cluster{Addresses: []string{"a"}}}, wantErr: "cluster address"},
		{name: "hash tag in prefix", o: redis.Options{URL: "redis://a:1", Prefix: "x{y}"}, wantErr: "hash tag"},
		{name: "negative timeout", o: redis.Options{URL: "redis://a:1", Timeout: -time.Second}, wantErr: "negative"},
		{name: "backoffs inverted", o: redis.Options{URL: "redis://a:1", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, wantErr: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestNewClientKinds(t *testing.T) {
	tests := []struct {
		name string
		o    redis.Options
		want string
	}{
		{name: "single node", o: redis.Options{URL: "redis://127.0.0.1:1"}, want: "*redis.Client"},
		{name: "sentinel", o: redis.Options{Sentinel: redis.Sentinel{MasterName: "m", Addresses: []string{"127.0.0.1:1"}}}, want: "*redis.Client"},
		{name: "cluster of one seed", o: redis.Options{Cluster: redis.Cluster{Addresses: []string{"127.0.0.1:1"}}}, want: "*redis.ClusterClient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redis.NewClient(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var got string
			switch c.(type) {
			case *goredis.Client:
				got = "*redis.Client"
			case *goredis.ClusterClient:
				got = "*redis.ClusterClient"
			}
			if got != tt.want {
				t.Fatalf("client %T, want %s", c, tt.want)
			}
		})
	}
}
