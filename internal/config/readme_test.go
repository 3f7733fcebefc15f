package config

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEConfigParses keeps the README's annotated configuration file a
// file keel accepts, with the defaults it says.
func TestREADMEConfigParses(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	_, after, ok := strings.Cut(s, "## Configuration")
	if !ok {
		t.Fatal("README.md has no Configuration section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md's Configuration section has no yaml block")
	}
	c, err := Parse([]byte(block))
	if err != nil {
		t.Fatalf("README.md's configuration does not parse:\n%v", err)
	}
	if c.Retry.AttemptTimeout != 0 || c.Limits.MaxResponseBytes != 64<<20 || c.Limits.MaxEventBytes != 1<<20 {
		t.Fatalf("README.md's configuration: attempt_timeout %v, limits %+v; want the defaults it documents", c.Retry.AttemptTimeout.D(), c.Limits)
	}
}
