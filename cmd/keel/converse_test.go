package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sonnetProfile = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"

func TestConverseQuickStart(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"converse", "--emulator", "--scenario", "../../examples/scenarios/quickstart.yaml",
		"--model", sonnetProfile, "--fallback", sonnetProfile + "@us-west-2", "--prompt", "Why do ships have keels?", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	var res struct {
		Reply     string `json:"reply"`
		Target    string `json:"target"`
		Fallbacks int    `json:"fallbacks"`
		Usage     struct {
			InputTokens, OutputTokens int
		} `json:"usage"`
		Attempts []struct {
			Target string `json:"target"`
			Status int    `json:"status"`
			Code   string `json:"code"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	var codes []string
	for _, a := range res.Attempts {
		codes = append(codes, a.Target[strings.LastIndexByte(a.Target, '@')+1:]+":"+a.Code)
	}
	want := "us-east-1:ThrottlingException us-east-1:ThrottlingException us-east-1:ThrottlingException us-west-2:ModelNotReadyException us-west-2:"
	if strings.Join(codes, " ") != want {
		t.Fatalf("attempts %v\nwant     %s", codes, want)
	}
	if res.Reply == "" || res.Target != sonnetProfile+"@us-west-2" || res.Fallbacks != 1 || res.Usage.OutputTokens == 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestConverseFailureExplains(t *testing.T) {
	dir := t.TempDir()
	sc := filepath.Join(dir, "deny.yaml")
	os.WriteFile(sc, []byte("description: deny\nrules:\n  - outages:\n      - answer: ValidationException\n"), 0o600)
	tests := []struct {
		name string
		json bool
		want []string
	}{
		{"human", false, []string{"ValidationException", "attempts", "fix:"}},
		{"json", true, []string{`"code": "ValidationException"`, `"retry": "never"`, `"attempts"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"converse", "--emulator", "--scenario", sc, "--model", "anthropic.claude-3-haiku-20240307-v1:0", "--prompt", "hi"}
			if tt.json {
				args = append(args, "--json")
			}
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, out.String(), errb.String())
			}
			got := out.String() + errb.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if strings.Count(got, "HTTP 400")+strings.Count(got, `"status": 400`) < 1 {
				t.Errorf("output does not show the one 400 attempt:\n%s", got)
			}
		})
	}
}

func TestConverseBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no model", []string{"--prompt", "hi", "--emulator"}, "--model and --prompt are required"},
		{"no prompt", []string{"--model", "m", "--emulator"}, "--model and --prompt are required"},
		{"stray argument", []string{"--model", "m", "--prompt", "hi", "extra"}, "unexpected argument"},
		{"both endpoints", []string{"--model", "m", "--prompt", "hi", "--emulator", "--endpoint", "http://127.0.0.1:1"}, "choose one"},
		{"scenario alone", []string{"--model", "m", "--prompt", "hi", "--scenario", "x.yaml"}, "--scenario needs --emulator"},
		{"bad fallback", []string{"--model", "m", "--prompt", "hi", "--emulator", "--fallback", "m@nowhere"}, "bad region"},
		{"missing scenario", []string{"--model", "m", "--prompt", "hi", "--emulator", "--scenario", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"bad config", []string{"--model", "m", "--prompt", "hi", "--emulator", "--config", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"negative max tokens", []string{"--model", "m", "--prompt", "hi", "--max-tokens", "-3"}, "--max-tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(append([]string{"converse"}, tt.args...), &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("stderr %q lacks %q", errb.String(), tt.want)
			}
		})
	}
}
