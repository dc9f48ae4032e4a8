package cluster

import (
	"regexp"
	"strings"
	"testing"
)

// validName replaced these regexps (issue 19); it must accept exactly what
// they did.
func TestValidNameMatchesTheRegexps(t *testing.T) {
	nodeRE := regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,64}$`)
	clusterRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)
	cases := []string{
		"", "n1", "node-1.example:4222", "a_b", "gochat", "x y", "n\n", "ü", "n/1", "n1\x00",
		strings.Repeat("a", 32), strings.Repeat("a", 33), strings.Repeat("b", 64), strings.Repeat("b", 65),
		"a.b", "a:b", "-", "_", ".", ":", "é1",
	}
	for _, s := range cases {
		if got, want := validName(s, 64, "_.:-"), nodeRE.MatchString(s); got != want {
			t.Errorf("node name %q: validName = %v, the regexp said %v", s, got, want)
		}
		if got, want := validName(s, 32, "_-"), clusterRE.MatchString(s); got != want {
			t.Errorf("cluster name %q: validName = %v, the regexp said %v", s, got, want)
		}
	}
}
