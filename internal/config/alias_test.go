package config

import (
	"strings"
	"testing"
)

// TestConfigMergeKeys: a YAML merge key (<<: *anchor) is YAML, not an
// unknown key; the merged keys are checked as the mapping's own.
func TestConfigMergeKeys(t *testing.T) {
	c, err := Parse([]byte("routes:\n  - &r {name: a, models: [m], targets: [{model: m, region: us-east-1}]}\n  - <<: *r\n    name: b\n    models: [n]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 2 || c.Routes[1].Name != "b" || len(c.Routes[1].Targets) != 1 {
		t.Fatalf("routes %+v: want b to inherit a's targets", c.Routes)
	}
	_, err = Parse([]byte("retry: &r {max_attempts: 2}\nbudget:\n  <<: *r\n"))
	if err == nil || !strings.Contains(err.Error(), `unknown key "max_attempts" in budget`) {
		t.Fatalf("a merged key unknown where it lands: %v", err)
	}
}

// TestConfigAliases: aliases are checked once per anchor, so a small file
// of many aliases is checked quickly (each of 3,000 routes aliasing a list
// of 3,000 models took 20 s before); when yaml.v3 gives up on excessive
// aliasing, that is the error, and no half-decoded value is validated.
func TestConfigAliases(t *testing.T) {
	file := func(n int) []byte {
		var b strings.Builder
		b.WriteString("x: &m [" + strings.TrimSuffix(strings.Repeat("m,", n), ",") + "]\nroutes:\n")
		for i := range n {
			b.WriteString("  - {name: r, models: *m, targets: [{model: t" + strings.Repeat("x", i%7) + "}]}\n")
		}
		return []byte(b.String())
	}
	if _, err := Parse(file(20)); err == nil || !strings.Contains(err.Error(), `unknown key "x"`) || strings.Contains(err.Error(), "lists no model") {
		t.Fatalf("20 aliases: %v; want only the unknown key x", err)
	}
	_, err := Parse(file(3000))
	if err == nil || !strings.Contains(err.Error(), "excessive aliasing") || strings.Contains(err.Error(), "lists no model") {
		t.Fatalf("3,000 aliases: %v; want yaml's excessive aliasing, and no false problem", err)
	}
}
