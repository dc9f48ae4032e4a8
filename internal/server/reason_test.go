package server

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestCloseReasonsDocumented checks that docs/OPERATIONS.md's list of the
// `reason`s of `connection closed` records is the code's, neither more nor
// less: it lacked `evicted by the registry` and `registry unavailable`
// (issue 23 item 19).
func TestCloseReasonsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	// The list runs from "`reason`, one of:" to the sentence's end.
	_, list, ok := strings.Cut(string(doc), "`reason`, one of:")
	if !ok {
		t.Fatal("docs/OPERATIONS.md has no \"`reason`, one of:\" list")
	}
	list, _, _ = strings.Cut(list, ". ")
	// Parenthesized explanations are not reasons.
	list = regexp.MustCompile(`\([^)]*\)`).ReplaceAllString(list, "")
	var documented []string
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(list, -1) {
		documented = append(documented, m[1])
	}
	var code []string
	for r := reasonNone + 1; r < numReasons; r++ {
		code = append(code, r.String())
	}
	slices.Sort(documented)
	slices.Sort(code)
	if !slices.Equal(documented, code) {
		t.Errorf("docs/OPERATIONS.md lists the close reasons\n%q\nthe code has\n%q", documented, code)
	}
}
