package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/admission"
)

// Priorities, as a Caller's Priority names them.
const (
	PriorityInteractive = "interactive"
	PriorityBatch       = "batch"
)

// Limits New checks a Caller against.
const (
	// MinBearerLen is the shortest bearer token New accepts: 16 random
	// base64 characters are 96 bits, out of reach of guessing, while a short
	// or dictionary token would let anyone who reaches the gateway in.
	MinBearerLen = 16
	// maxNameLen bounds a caller's name, which labels metrics and log lines.
	maxNameLen = 64
	// maxAccessKeyIDLen is AWS's limit on an access key ID.
	maxAccessKeyIDLen = 128
)

// Caller is one client the gateway knows, with the secrets already
// resolved (config's env:NAME references read). A Caller's String,
// GoString, LogValue and MarshalJSON never show its secrets, so it may be
// printed and logged.
type Caller struct {
	// Name names the caller in logs, metrics and the status page: letters,
	// digits, '.', '_' and '-', at most 64 characters.
	Name string
	// Bearer is the token the caller sends as "Authorization: Bearer
	// <token>" (how the AWS SDKs send a Bedrock API key): at least
	// MinBearerLen printable ASCII characters, no spaces. Empty: the caller
	// does not use one.
	Bearer string
	// AccessKeyID and SecretAccessKey are the SigV4 key the caller signs
	// with. Both or neither; the ID is letters and digits.
	AccessKeyID, SecretAccessKey string
	// Models are the models the caller may use, as patterns with '*'
	// wildcards (see Allow); empty allows every model.
	Models []string
	// Priority is the governor's class for the caller's calls:
	// PriorityInteractive (also when empty) or PriorityBatch.
	Priority string
	// TokensPerMinute is the caller's share of the quota (Budgets); zero
	// means no share of its own: the caller is limited only by the quota.
	TokensPerMinute int
}

// Class returns the admission class of c's Priority: Batch for
// PriorityBatch, Interactive otherwise.
func (c *Caller) Class() admission.Class {
	if c.Priority == PriorityBatch {
		return admission.Batch
	}
	return admission.Interactive
}

// redacted stands for a secret that is set.
const redacted = "[redacted]"

func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}

// String describes c without its secrets: its name, the kinds of
// credentials it has (with the access key ID, which is not secret),
// models, priority and budget.
func (c Caller) String() string {
	var b strings.Builder
	b.WriteString("caller " + strconv.Quote(c.Name) + " (")
	var creds []string
	if c.Bearer != "" {
		creds = append(creds, "bearer")
	}
	if c.AccessKeyID != "" {
		creds = append(creds, "sigv4 "+c.AccessKeyID)
	}
	if len(creds) == 0 {
		creds = append(creds, "no credentials")
	}
	b.WriteString(strings.Join(creds, ", "))
	if len(c.Models) > 0 {
		fmt.Fprintf(&b, "; models %q", c.Models)
	}
	if c.Priority != "" {
		b.WriteString("; " + c.Priority)
	}
	if c.TokensPerMinute > 0 {
		fmt.Fprintf(&b, "; %d tokens/min", c.TokensPerMinute)
	}
	b.WriteString(")")
	return b.String()
}

// GoString is the %#v form of c, with its secrets redacted.
func (c Caller) GoString() string {
	return fmt.Sprintf("auth.Caller{Name:%q, Bearer:%q, AccessKeyID:%q, SecretAccessKey:%q, Models:%#v, Priority:%q, TokensPerMinute:%d}",
		c.Name, redact(c.Bearer), c.AccessKeyID, redact(c.SecretAccessKey), c.Models, c.Priority, c.TokensPerMinute)
}

// LogValue logs c as a group without its secrets: name, whether it has a
// bearer token, access key ID, models, priority, tokens_per_minute.
func (c Caller) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.Bool("bearer", c.Bearer != ""),
		slog.String("access_key_id", c.AccessKeyID),
		slog.Any("models", c.Models),
		slog.String("priority", c.Priority),
		slog.Int("tokens_per_minute", c.TokensPerMinute),
	)
}

// MarshalJSON writes c as LogValue does, without its secrets, so a Caller
// inside a logged value (a []Caller) or a JSON document shows none either.
func (c Caller) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Name            string   `json:"name"`
		Bearer          bool     `json:"bearer"`
		AccessKeyID     string   `json:"access_key_id,omitempty"`
		Models          []string `json:"models,omitempty"`
		Priority        string   `json:"priority,omitempty"`
		TokensPerMinute int      `json:"tokens_per_minute"`
	}{c.Name, c.Bearer != "", c.AccessKeyID, c.Models, c.Priority, c.TokensPerMinute})
}

// validateCallers checks callers as New documents, returning errors that
// name the caller and field and never a secret.
func validateCallers(callers []Caller) error {
	names := make(map[string]int, len(callers))
	keys := make(map[string]int, len(callers))
	for i := range callers {
		c := &callers[i]
		where := fmt.Sprintf("auth: callers[%d] (%q)", i, c.Name)
		if err := validateName(c.Name); err != nil {
			return fmt.Errorf("%s: name %w", where, err)
		}
		if j, dup := names[c.Name]; dup {
			return fmt.Errorf("%s: name is also callers[%d]'s; names must be unique", where, j)
		}
		names[c.Name] = i
		if c.Bearer == "" && c.AccessKeyID == "" && c.SecretAccessKey == "" {
			return fmt.Errorf("%s: has no credentials; set bearer, or sigv4's access_key_id and secret_access_key", where)
		}
		if c.Bearer != "" {
			if err := validateBearer(c.Bearer); err != nil {
				return fmt.Errorf("%s: bearer %w", where, err)
			}
			for j := range i {
				if callers[j].Bearer == c.Bearer {
					return fmt.Errorf("%s: bearer is the same as callers[%d]'s (%q); each caller needs its own token", where, j, callers[j].Name)
				}
			}
		}
		switch {
		case c.AccessKeyID != "" && c.SecretAccessKey == "":
			return fmt.Errorf("%s: sigv4 access_key_id %q has no secret_access_key", where, c.AccessKeyID)
		case c.AccessKeyID == "" && c.SecretAccessKey != "":
			return fmt.Errorf("%s: sigv4 secret_access_key is set without an access_key_id", where)
		case c.AccessKeyID != "":
			if err := validateAccessKeyID(c.AccessKeyID); err != nil {
				return fmt.Errorf("%s: sigv4 access_key_id %w", where, err)
			}
			if j, dup := keys[c.AccessKeyID]; dup {
				return fmt.Errorf("%s: sigv4 access_key_id %q is also callers[%d]'s; each caller needs its own key", where, c.AccessKeyID, j)
			}
			keys[c.AccessKeyID] = i
		}
		for k, p := range c.Models {
			if err := validatePattern(p); err != nil {
				return fmt.Errorf("%s: models[%d] %q: %w", where, k, p, err)
			}
		}
		switch c.Priority {
		case "", PriorityInteractive, PriorityBatch:
		default:
			return fmt.Errorf("%s: priority %q is neither %q nor %q", where, c.Priority, PriorityInteractive, PriorityBatch)
		}
		if c.TokensPerMinute < 0 {
			return fmt.Errorf("%s: tokens_per_minute is %d; want 0 (no budget of its own) or more", where, c.TokensPerMinute)
		}
	}
	return nil
}

func validateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("is empty")
	case len(name) > maxNameLen:
		return fmt.Errorf("is %d characters long; at most %d", len(name), maxNameLen)
	}
	for _, r := range name {
		if !isAlnum(r) && r != '.' && r != '_' && r != '-' {
			return fmt.Errorf("has %q; use letters, digits, '.', '_' and '-'", r)
		}
	}
	return nil
}

// validateBearer checks a token's shape; its errors never quote it.
func validateBearer(tok string) error {
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return fmt.Errorf("has a space, control or non-ASCII character at byte %d; a token is printable ASCII", i)
		}
	}
	if len(tok) < MinBearerLen {
		return fmt.Errorf("is %d characters long; use at least %d random ones", len(tok), MinBearerLen)
	}
	return nil
}

func validateAccessKeyID(id string) error {
	if len(id) > maxAccessKeyIDLen {
		return fmt.Errorf("is %d characters long; at most %d", len(id), maxAccessKeyIDLen)
	}
	for _, r := range id {
		if !isAlnum(r) {
			return fmt.Errorf("%q has %q; use letters and digits", id, r)
		}
	}
	return nil
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}
