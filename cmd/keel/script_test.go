package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/rogpeppe/go-internal/txtar"
	"go.uber.org/goleak"
)

// TestMain makes this test binary double as the keel command: the scripts
// in testdata/script run `exec keel ...` as a separate process, as a user
// would. When it runs the tests, no goroutine may be left at the end.
func TestMain(m *testing.M) {
	testscript.Main(leakCheckedM{m}, map[string]func(){
		"keel": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// leakCheckedM is goleak.VerifyTestMain's check, around the run that
// testscript.Main makes.
type leakCheckedM struct{ m *testing.M }

func (l leakCheckedM) Run() int {
	code := l.m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			return 1
		}
	}
	return code
}

// TestScripts runs testdata/script/*.txtar: the command line's behaviour
// (help, --version, config errors, JSON) and every command README.md and
// docs/ show (TestDocCommands checks that none is missing). Each script runs
// in its own directory holding a copy of examples/.
func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs keel as a process, emulators and a 10-second bench")
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			return os.CopyFS(filepath.Join(env.WorkDir, "examples"), os.DirFS("../../examples"))
		},
		Condition: func(cond string) (bool, error) {
			// [free:PORT]: nothing listens on 127.0.0.1:PORT, so a command
			// the docs show with that fixed port can run.
			if port, ok := strings.CutPrefix(cond, "free:"); ok {
				l, err := net.Listen("tcp", "127.0.0.1:"+port)
				if err != nil {
					return false, nil
				}
				return true, l.Close()
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"listening": cmdListening},
	})
}

// cmdListening is the script command `listening [PORT]`: it waits (up to
// 20 s) until a process started in the script's directory listens on a TCP
// port of 127.0.0.1 (on PORT, when given: a process listening on two, such
// as keel serve --emulator, is ready when its own port is), and sets $URL
// to http://127.0.0.1:PORT. A `keel emulate` started in the background with
// & is then ready, whatever port it chose. It reads /proc, so scripts
// using it run on Linux only.
func cmdListening(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 1 {
		ts.Fatalf("usage: listening [PORT]")
	}
	want := 0
	if len(args) == 1 {
		p, err := strconv.Atoi(args[0])
		if err != nil || p <= 0 {
			ts.Fatalf("listening: %q is not a port", args[0])
		}
		want = p
	}
	dir := ts.Getenv("WORK")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if port := listeningIn(dir, want); port != 0 {
			ts.Setenv("URL", "http://127.0.0.1:"+strconv.Itoa(port))
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no process in %s listens on 127.0.0.1 after 20s", dir)
		}
		time.Sleep(20 * time.Millisecond) // polling another process: no event to wait on
	}
}

// listeningIn returns the port a process whose working directory is dir
// listens on at 127.0.0.1 (want, when not 0), or 0.
func listeningIn(dir string, want int) int {
	listen := loopbackListeners() // socket inode -> port
	pids, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range pids {
		if cwd, err := os.Readlink(p + "/cwd"); err != nil || cwd != dir {
			continue
		}
		fds, _ := filepath.Glob(p + "/fd/*")
		for _, fd := range fds {
			l, err := os.Readlink(fd)
			if inode, ok := strings.CutPrefix(l, "socket:["); err == nil && ok {
				if port := listen[strings.TrimSuffix(inode, "]")]; port != 0 && (want == 0 || port == want) {
					return port
				}
			}
		}
	}
	return 0
}

// loopbackListeners reads /proc/net/tcp: the inodes of sockets listening on
// 127.0.0.1, with their ports.
func loopbackListeners() map[string]int {
	out := map[string]int{}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		ip, port, ok := strings.Cut(f[1], ":")
		if !ok || ip != "0100007F" { // 127.0.0.1, little-endian
			continue
		}
		if n, err := strconv.ParseInt(port, 16, 32); err == nil {
			out[f[9]] = int(n)
		}
	}
	return out
}

// docCommandsExempt are commands the docs show that no script runs, each
// with the reason. Keep it short. They are keel bench runs, too long (or,
// for the smoke run, the same as TestRunShort in internal/bench) to run in
// the suite; TestDocCommands still parses and checks their flags, so a
// renamed or out-of-range flag in the docs fails it.
var docCommandsExempt = map[string]string{
	"keel bench quota":                                                                         "runs for 3m15s",
	"keel bench quota --seed 2 --json":                                                         "runs for 3m15s; TestBenchQuotaJSON covers --json",
	"keel bench quota --seed 2":                                                                "runs for 3m15s; the default run with another seed",
	"keel bench quota --seed 1":                                                                "runs for 3m15s; the default run, its seed named",
	"keel bench quota --seed 2 --contenders keel,keel-learn":                                   "runs for 3m15s; the default run with two of its contenders",
	"keel bench quota --seed 4 --contenders keel,standard --calls calls.jsonl":                 "runs for 3m15s; TestBenchQuotaJSON covers --calls",
	"keel bench quota --quota 3_000_000 --duration 6s --speed 0.05 --deadline 5s":              "the same run as TestRunShort (internal/bench); two real-time benches at once would disturb each other",
	"keel bench quota --replicas 4 --contenders keel-redis,keel-local":                         "runs for 3m15s; bench_replicas.txtar runs the replicas in miniature",
	"keel bench quota --replicas 4 --contenders keel-redis,keel-local --load 0.8":              "runs for 3m15s; the same run at another checked load",
	"keel bench quota --replicas 4 --contenders keel-redis,keel-local --load 0.8 --start full": "runs for 3m15s; bench_replicas.txtar runs --start full in miniature",
	"keel bench quota --replicas 4 --contenders keel-redis,keel-local --redis-outage 10s":      "runs for 3m15s; bench_replicas.txtar runs an outage in miniature",
	"keel bench outage":                                                              "runs for about 2m10s (100 s of arrivals, then the 30 s deadline); TestOutageShort (internal/bench) runs the same on a scenario in miniature",
	"keel bench outage --json":                                                       "runs for about 2m10s; TestBenchOutageJSON covers --json",
	"keel bench learn":                                                               "runs every case: about 12 minutes; TestLearnShort (internal/bench) runs three cases in miniature",
	"keel bench learn --case noise":                                                  "runs 3 minutes; the script runs it for 10 s",
	"keel bench learn --case resume":                                                 "runs five batches of the quick start: about 1.5 minutes; TestLearnShort runs it in miniature",
	"keel bench learn --case tight":                                                  "runs about 2.5 minutes; TestLearnShort runs it in miniature",
	"keel bench learn --case shapes":                                                 "runs 8 batches of 150 records: about 5 minutes; TestLearnShapesShort runs it in miniature",
	"keel bench learn --case noise,resume,tight":                                     "runs about 7 minutes",
	"keel bench learn --case resume,tight":                                           "runs about 3.5 minutes; TestLearnShort runs both in miniature",
	"keel bench learn --case noise,resume,tight --seed 2":                            "runs about 7 minutes",
	"keel bench learn --case noise --seed 2":                                         "runs 3 minutes; the script runs the noise case for 10 s",
	"keel bench learn --case shapes --shapes 10s-empty,1s --keel learning":           "runs two batches of 150 records: about 2.5 minutes; TestLearnShapesChosen (internal/bench) runs a choice of rows in miniature",
	"keel bench tiers":                                                               "runs about 21 s; TestTiersShort (internal/bench) runs it in miniature, bench_tiers.txtar through the command line",
	"keel bench tiers --throttle 0.5 --seed 2":                                       "runs about 21 s; the same run as the default with other values of checked flags",
	"keel bench gateway":                                                             "runs about 33 s; TestGatewayShort (internal/bench) runs it in miniature, bench_gateway.txtar through the command line",
	"keel bench gateway --op converse-stream":                                        "runs about 33 s; TestGatewayShort runs ConverseStream in miniature",
	"keel bench gateway --concurrency 1":                                             "runs about 33 s; the default run with a checked flag's other value",
	"keel bench gateway --contenders keel --cpuprofile cpu.out --memprofile mem.out": "runs about 11 s; bench_gateway.txtar runs the profiles for 0.2 s",
	"keel bench cache":                                                               "runs about 4 s, a second of it the coalescing case's held replies; TestCacheShort (internal/bench) runs it in miniature, bench_cache.txtar through the command line",
	"keel bench outage --scenario internal/bench/testdata/outage-short.yaml --duration 8s --rate 10 --deadline 4s --speed 0.05": "the same run as TestOutageShort (internal/bench); two real-time benches at once would disturb each other",
}

// TestDocCommands (issue 15, "how to keep it fixed"): every keel command
// that README.md and docs/*.md show in a code block (`go run ./cmd/keel
// ...` read as `keel ...`) is run, word for word, by a script in
// testdata/script, unless TestDocsDLQBatchCommandsRunInSequence runs it or it is in the short exempt list. When a
// command in the docs changes, its script must change with it.
func TestDocCommands(t *testing.T) {
	scripted := map[string]bool{}
	scripts, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, s := range scripts {
		ar, err := txtar.ParseFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(ar.Comment), "\n") {
			if words := scriptCommand(line); words != nil {
				scripted[strings.Join(words, " ")] = true
			}
		}
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	docs = append([]string{"../../README.md"}, docs...)
	// The batch and dead-letter queue commands run in sequence, as a
	// newcomer would type them, in TestDocsDLQBatchCommandsRunInSequence.
	readme, err1 := os.ReadFile("../../README.md")
	dlqDoc, err2 := os.ReadFile("../../docs/dlq-batch.md")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	inSequence := map[string]bool{}
	for _, c := range docCommands("```sh\n" + strings.Join(docSequence(string(readme), string(dlqDoc)), "\n") + "\n```\n") {
		inSequence[strings.Join(c.words, " ")] = true
	}
	seen := 0
	inDocs := map[string]bool{}
	for _, d := range docs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range docCommands(string(b)) {
			seen++
			key := strings.Join(c.words, " ")
			inDocs[key] = true
			switch {
			case scripted[key]:
				continue
			case inSequence[key]:
				continue
			case docCommandsExempt[key] != "":
				// Not run, but its flags must still be right.
				if len(c.words) < 3 || c.words[1] != "bench" {
					t.Errorf("%s:%d: exempt command %q is not a keel bench run", d, c.line, key)
				} else if err := checkBenchArgs(c.words[2:]); err != nil {
					t.Errorf("%s:%d: exempt command %q: its flags do not parse: %v", d, c.line, key, err)
				}
				continue
			}
			t.Errorf("%s:%d: no script in testdata/script runs this command:\n\t%s\nwrite it in a script as\n\texec %s", d, c.line, c.text, scriptQuote(c.words))
		}
	}
	if seen < 10 {
		t.Fatalf("found only %d commands in the docs; is the extraction broken?", seen)
	}
	for key := range docCommandsExempt {
		if scripted[key] {
			t.Errorf("%q is exempt but a script runs it: take it off the list", key)
		}
		if !inDocs[key] {
			t.Errorf("%q is exempt but no doc shows it any more: take it off the list", key)
		}
	}
}

// scriptQuote writes words as a script line: a word with a space, quote or
// nothing in it goes in single quotes, a quote in it doubled.
func scriptQuote(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = w
		if w == "" || strings.ContainsAny(w, " \t'#") {
			q[i] = "'" + strings.ReplaceAll(w, "'", "''") + "'"
		}
	}
	return strings.Join(q, " ")
}

var (
	envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`) // NAME=value before a command
	background    = regexp.MustCompile(`^&(\w+&)?$`)               // a script's & or &name&
)

// docCommand is a keel command line in a Markdown code block.
type docCommand struct {
	line  int      // of its first line
	text  string   // as written
	words []string // as the shell splits it, starting with "keel"
}

// docCommands returns the keel commands in md's fenced code blocks: in a
// sh, bash, shell or console block every command line, elsewhere only
// lines with a "$ " prompt (the rest is output or synopsis). A line ending
// in \ continues on the next. A command ends at an unquoted |, ;, &, > or
// # comment; environment assignments before it are skipped.
func docCommands(md string) []docCommand {
	var out []docCommand
	lines := strings.Split(md, "\n")
	inBlock, shell := false, false
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if fence, ok := strings.CutPrefix(l, "```"); ok {
			inBlock = !inBlock
			switch fence {
			case "sh", "bash", "shell", "console":
				shell = true
			default:
				shell = false
			}
			continue
		}
		if !inBlock {
			continue
		}
		start := i + 1
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		cmd, prompt := strings.CutPrefix(l, "$ ")
		if !shell && !prompt {
			continue
		}
		words := shellWords(cmd)
		for len(words) > 0 && envAssignment.MatchString(words[0]) {
			words = words[1:]
		}
		if len(words) >= 3 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/keel" {
			words = append([]string{"keel"}, words[3:]...)
		}
		if len(words) > 0 && words[0] == "keel" {
			out = append(out, docCommand{line: start, text: l, words: words})
		}
	}
	return out
}

// shellWords splits a POSIX shell command line into words: single quotes,
// double quotes (with \" and \\), backslash escapes; it stops at an
// unquoted |, ;, &, > or a # that starts a word.
func shellWords(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '|' || c == ';' || c == '&' || c == '>' || (c == '#' && !inWord):
			flush()
			return words
		case c == '\'':
			inWord = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				j = len(s) - i - 1
			}
			w.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				w.WriteByte(s[i])
			}
		case c == '\\' && i+1 < len(s):
			inWord = true
			i++
			w.WriteByte(s[i])
		default:
			inWord = true
			w.WriteByte(c)
		}
	}
	flush()
	return words
}

// scriptCommand returns the words of a script line that runs keel (`exec
// keel ...`, with or without ! or ?, conditions or a trailing & or &name&),
// split as testscript splits them: single quotes group, ” in quotes is a
// quote. Nil for any other line.
func scriptCommand(line string) []string {
	line = strings.TrimSpace(line)
	for {
		if rest, ok := strings.CutPrefix(line, "["); ok {
			if _, after, ok := strings.Cut(rest, "]"); ok {
				line = strings.TrimSpace(after)
				continue
			}
		}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			line = strings.TrimSpace(rest)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "?"); ok {
			line = strings.TrimSpace(rest)
			continue
		}
		break
	}
	rest, ok := strings.CutPrefix(line, "exec keel")
	if !ok || (rest != "" && rest[0] != ' ') {
		return nil
	}
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	s := "keel" + rest
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			w.WriteByte('\'')
			i++
		case c == '\'':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, w.String())
			}
			w.Reset()
			inWord = false
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	if n := len(words); n > 0 && background.MatchString(words[n-1]) {
		words = words[:n-1]
	}
	return words
}
