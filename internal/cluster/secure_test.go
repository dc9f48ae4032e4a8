package cluster

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@h1:4222", "nats://alice:xxxxx@h1:4222"},
		{"tls://s3cret@h1:4222", "tls://xxxxx@h1:4222"},
		{"nats://alice:s3cret@h1:bad port", "nats://xxxxx@h1:bad port"},
		{"alice:s3cret@h1:4222", "xxxxx@h1:4222"},
		{"nats://al%ice:s3cret@h1:4222", "nats://xxxxx@h1:4222"},
	} {
		got := redactURL(tc.in)
		if got != tc.want || strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := redactURLs([]string{"nats://a:s3cret@h1:1", "nats://h2:2"}); got != "nats://a:xxxxx@h1:1,nats://h2:2" {
		t.Errorf("redactURLs = %q", got)
	}
}

// Check's error about a malformed --nats URL shows no password.
func TestCheckRedactsNATSURL(t *testing.T) {
	c := Config{NATS: []string{"nats//alice:s3cret@h1:4222"}, MaxClients: 1}
	err := c.Check()
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Check() = %v", err)
	}
}
