package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keel-run/keel/internal/admission"
)

func TestNewRefuses(t *testing.T) {
	ok := func() Caller { return Caller{Name: "team-a", Bearer: tokenA} }
	with := func(f func(c *Caller)) []Caller { c := ok(); f(&c); return []Caller{c} }
	tests := []struct {
		name    string
		callers []Caller
		want    string
	}{
		{name: "no callers", callers: nil,
			want: "auth: no callers; a gateway without callers runs open, without an Authenticator"},
		{name: "empty name", callers: with(func(c *Caller) { c.Name = "" }),
			want: `auth: callers[0] (""): name is empty`},
		{name: "name with a space", callers: with(func(c *Caller) { c.Name = "team a" }),
			want: `auth: callers[0] ("team a"): name has ' '; use letters, digits, '.', '_' and '-'`},
		{name: "name too long", callers: with(func(c *Caller) { c.Name = strings.Repeat("n", 65) }),
			want: `name is 65 characters long; at most 64`},
		{name: "duplicate name", callers: []Caller{ok(), {Name: "team-a", Bearer: tokenC}},
			want: `auth: callers[1] ("team-a"): name is also callers[0]'s; names must be unique`},
		{name: "no credentials", callers: with(func(c *Caller) { c.Bearer = "" }),
			want: `auth: callers[0] ("team-a"): has no credentials; set bearer, or sigv4's access_key_id and secret_access_key`},
		{name: "short token", callers: with(func(c *Caller) { c.Bearer = "secret-123" }),
			want: `auth: callers[0] ("team-a"): bearer is 10 characters long; use at least 16 random ones`},
		{name: "token with a space", callers: with(func(c *Caller) { c.Bearer = "secret token 0123456789" }),
			want: `auth: callers[0] ("team-a"): bearer has a space, control or non-ASCII character at byte 6; a token is printable ASCII`},
		{name: "token with a newline", callers: with(func(c *Caller) { c.Bearer = tokenA + "\n" }),
			want: `bearer has a space, control or non-ASCII character at byte 29`},
		{name: "shared token", callers: []Caller{ok(), {Name: "team-b", Bearer: tokenA}},
			want: `auth: callers[1] ("team-b"): bearer is the same as callers[0]'s ("team-a"); each caller needs its own token`},
		{name: "key without secret", callers: with(func(c *Caller) { c.AccessKeyID = keyA }),
			want: `auth: callers[0] ("team-a"): sigv4 access_key_id "AKIDTEAMA" has no secret_access_key`},
		{name: "secret without key", callers: with(func(c *Caller) { c.SecretAccessKey = secretA }),
			want: `auth: callers[0] ("team-a"): sigv4 secret_access_key is set without an access_key_id`},
		{name: "key with a slash", callers: with(func(c *Caller) { c.AccessKeyID, c.SecretAccessKey = "AKID/A", secretA }),
			want: `auth: callers[0] ("team-a"): sigv4 access_key_id "AKID/A" has '/'; use letters and digits`},
		{name: "shared key", callers: []Caller{{Name: "a", AccessKeyID: keyA, SecretAccessKey: secretA}, {Name: "b", AccessKeyID: keyA, SecretAccessKey: secretB}},
			want: `auth: callers[1] ("b"): sigv4 access_key_id "AKIDTEAMA" is also callers[0]'s; each caller needs its own key`},
		{name: "empty pattern", callers: with(func(c *Caller) { c.Models = []string{"*claude*", ""} }),
			want: `auth: callers[0] ("team-a"): models[1] "": is empty; '*' allows every model`},
		{name: "regular expression", callers: with(func(c *Caller) { c.Models = []string{"^anthropic\\..*"} }),
			want: `auth: callers[0] ("team-a"): models[0] "^anthropic\\..*": has '^' at byte 0; a pattern is a model ID, inference profile ID or ARN with '*' wildcards`},
		{name: "class", callers: with(func(c *Caller) { c.Models = []string{"anthropic.claude-[34]*"} }),
			want: `models[0] "anthropic.claude-[34]*": has '[' at byte 17; the only wildcard is '*' (list one pattern per model instead)`},
		{name: "question mark", callers: with(func(c *Caller) { c.Models = []string{"anthropic.claude-?-*"} }),
			want: `models[0] "anthropic.claude-?-*": has '?' at byte 17; the only wildcard is '*' (list one pattern per model instead)`},
		{name: "pattern with a space", callers: with(func(c *Caller) { c.Models = []string{"anthropic claude"} }),
			want: `has ' ' at byte 9`},
		{name: "priority", callers: with(func(c *Caller) { c.Priority = "high" }),
			want: `auth: callers[0] ("team-a"): priority "high" is neither "interactive" nor "batch"`},
		{name: "negative budget", callers: with(func(c *Caller) { c.TokensPerMinute = -1 }),
			want: `auth: callers[0] ("team-a"): tokens_per_minute is -1; want 0 (no budget of its own) or more`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.callers, Options{})
			if err == nil {
				t.Fatalf("New accepted %v", tt.callers)
			}
			if a != nil {
				t.Error("New returned an Authenticator with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error\n%s\nwant it to hold\n%s", err, tt.want)
			}
			if tt.callers != nil {
				if _, berr := NewBudgets(tt.callers, nil); berr == nil || berr.Error() != err.Error() {
					t.Errorf("NewBudgets error %v, want New's %v", berr, err)
				}
			}
			for _, c := range tt.callers {
				for _, secret := range []string{c.Bearer, c.SecretAccessKey} {
					if secret != "" && strings.Contains(err.Error(), secret) {
						t.Errorf("New's error for %q holds a secret", tt.name)
					}
				}
			}
		})
	}
}

func TestNewCopies(t *testing.T) {
	callers := testCallers()
	a, err := New(callers, Options{})
	if err != nil {
		t.Fatal(err)
	}
	callers[0].Models[0] = "*"
	callers[0].Name = "changed"
	if err := a.Allow(a.Callers()[0], "amazon.nova-pro-v1:0"); err == nil {
		t.Error("changing the callers given to New changed the Authenticator")
	}
}

func TestClass(t *testing.T) {
	for _, tt := range []struct {
		priority string
		want     admission.Class
	}{{"", admission.Interactive}, {PriorityInteractive, admission.Interactive}, {PriorityBatch, admission.Batch}} {
		if got := (&Caller{Priority: tt.priority}).Class(); got != tt.want {
			t.Errorf("Class of priority %q = %v, want %v", tt.priority, got, tt.want)
		}
	}
}

// TestNoSecretsShown prints and logs callers every way a server might and
// checks that no secret shows.
func TestNoSecretsShown(t *testing.T) {
	callers := testCallers()
	c := callers[0]
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("caller", "caller", c, "ptr", &c)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("caller", "caller", c, "ptr", &c, "all", callers)
	marshalled, err := json.Marshal(callers)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{
		"json":       string(marshalled),
		"%v":         fmt.Sprintf("%v", c),
		"%+v":        fmt.Sprintf("%+v", c),
		"%#v":        fmt.Sprintf("%#v", c),
		"%s":         fmt.Sprintf("%s", c),
		"%q":         fmt.Sprintf("%q", c),
		"%x":         fmt.Sprintf("%x", c),
		"%v pointer": fmt.Sprintf("%v", &c),
		"%v slice":   fmt.Sprintf("%v", callers),
		"%#v slice":  fmt.Sprintf("%#v", callers),
		"slog text":  text.String(),
		"slog json":  js.String(),
	}
	for how, out := range shown {
		for _, secret := range []string{tokenA, tokenC, secretA, secretB} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows a secret", how)
			}
		}
	}
	if want := `caller "team-a" (bearer, sigv4 AKIDTEAMA; models ["*anthropic.claude*"]; 200000 tokens/min)`; shown["%v"] != want {
		t.Errorf("String = %s, want %s", shown["%v"], want)
	}
	if want := `auth.Caller{Name:"team-a", Bearer:"[redacted]", AccessKeyID:"AKIDTEAMA", SecretAccessKey:"[redacted]", ` +
		`Models:[]string{"*anthropic.claude*"}, Priority:"", TokensPerMinute:200000}`; shown["%#v"] != want {
		t.Errorf("GoString = %s, want %s", shown["%#v"], want)
	}
	var logged struct {
		Caller map[string]any `json:"caller"`
	}
	if err := json.Unmarshal(js.Bytes(), &logged); err != nil {
		t.Fatal(err)
	}
	if logged.Caller["name"] != "team-a" || logged.Caller["bearer"] != true || logged.Caller["access_key_id"] != keyA {
		t.Errorf("logged caller %v, want its name, bearer true and access key ID", logged.Caller)
	}
}
