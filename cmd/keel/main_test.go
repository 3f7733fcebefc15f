package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion (issue 15, item 12): keel --version and keel version print
// what the build info knows: module version, revision, dirty flag, Go.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("keel %s: exit %d, stderr %s", strings.Join(args, " "), code, errb.String())
		}
		if !strings.HasPrefix(out.String(), "keel ") || !strings.Contains(out.String(), "go1.") {
			t.Fatalf("keel %s printed %q, want keel VERSION ... goVERSION", strings.Join(args, " "), out.String())
		}
	}
}

func TestVersionString(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"go install @latest", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.4.0"},
			Settings: settings("GOOS", "linux", "GOARCH", "amd64")}, "keel v0.4.0 go1.26.8 linux/amd64"},
		{"a clone, clean", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("GOOS", "darwin", "GOARCH", "arm64", "vcs.revision", "cb79940e1f2a3b4c5d6e7f8091a2b3c4d5e6f708", "vcs.time", "2026-12-03T09:00:00Z", "vcs.modified", "false")},
			"keel (devel) revision cb79940e1f2a 2026-12-03T09:00:00Z go1.26.8 darwin/arm64"},
		{"a clone, edited", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: settings("vcs.revision", "cb79940e1f2a3b4c5d6e7f8091a2b3c4d5e6f708", "vcs.modified", "true")},
			"keel (devel) revision cb79940e1f2a (dirty) go1.26.8"},
		{"no build info", nil, "keel (unknown version)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionString(tt.bi); got != tt.want {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// myHelp are the commands whose help this file checks: every command.
var myHelp = [][]string{{"converse"}, {"explain"}, {"bench"}, {"bench", "quota"}, {"bench", "outage"}, {"bench", "learn"}, {"emulate"},
	{"doctor"},
	{"batch", "run"}, {"batch", "status"}, {"dlq", "list"}, {"dlq", "show"}, {"dlq", "redrive"}, {"dlq", "purge"}, {"dlq", "export"}}

// TestHelpExitsZero (issue 15, item 13): -h and --help print the usage on
// stdout and exit 0, for every command; so does keel help COMMAND.
func TestHelpExitsZero(t *testing.T) {
	for _, cmd := range myHelp {
		for _, h := range []string{"-h", "--help", "-help", "help"} {
			var args []string
			switch h {
			case "help": // keel help converse
				args = append([]string{"help"}, cmd...)
			default:
				args = append(append([]string{}, cmd...), h)
			}
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run(args, &out, &errb); code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, errb.String())
				}
				if !strings.Contains(out.String(), "Usage:") || !strings.Contains(out.String(), "keel "+strings.Join(cmd, " ")) {
					t.Fatalf("stdout lacks the usage:\n%s", out.String())
				}
				if errb.Len() > 0 {
					t.Fatalf("stderr not empty:\n%s", errb.String())
				}
			})
		}
	}
}

// TestFlagHelpReadsWell (issue 15, item 13): a flag's argument name is a
// placeholder (ID, FILE, D) or its type, never a word of its description
// that flag.UnquoteUsage took for one (-duration arrive, -endpoint keel);
// each flag shows one default; a Flags: heading has flags under it.
func TestFlagHelpReadsWell(t *testing.T) {
	types := map[string]bool{"string": true, "int": true, "uint": true, "float": true, "duration": true, "value": true}
	for _, cmd := range myHelp {
		t.Run(strings.Join(cmd, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			run(append(append([]string{}, cmd...), "-h"), &out, &errb)
			help := out.String() + errb.String()
			flags := 0
			for _, line := range strings.Split(help, "\n") {
				if strings.Count(line, "(default") > 1 {
					t.Errorf("two defaults: %q", line)
				}
				f := strings.Fields(line)
				if !strings.HasPrefix(line, "  -") || len(f) == 0 {
					continue
				}
				flags++
				if len(f) > 1 && !types[f[1]] && strings.ToUpper(f[1]) != f[1] {
					t.Errorf("flag %s shows argument %q: a word of its description, not a placeholder", f[0], f[1])
				}
			}
			if strings.HasSuffix(strings.TrimSpace(help), "Flags:") || (strings.Contains(help, "Flags:") && flags == 0) {
				t.Errorf("a Flags: heading with no flags:\n%s", help)
			}
		})
	}
}
