// Command keel is the command-line face of keel: a resilience layer for
// Amazon Bedrock. Run `keel help` for the subcommands.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
)

// command is one subcommand. Each lives in its own file and registers itself
// in an init function, so subcommands can be added without touching this file.
type command struct {
	name    string
	summary string
	// run executes the subcommand with the arguments after its name and
	// returns the process exit code.
	run func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("keel: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[0] == "help" {
		// keel help converse is keel converse -h.
		return run(append(append([]string{}, args[1:]...), "-h"), stdout, stderr)
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" || args[0] == "version" {
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(stdout, versionString(bi))
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "keel: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "keel: a resilience layer for Amazon Bedrock")
	fmt.Fprintln(w, "\nUsage: keel <command> [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n", "version", "print keel's version, revision and Go version (also --version)")
	fmt.Fprintln(w, "\nRun `keel <command> -h` (or `keel help <command>`) for a command's flags.")
}

// versionString describes the build: the module version ("(devel)" when
// built from a clone, vX.Y.Z from go install ...@version), the VCS revision
// and whether the tree had uncommitted changes (when the build recorded
// them), the Go version and the platform.
func versionString(bi *debug.BuildInfo) string {
	if bi == nil {
		return "keel (unknown version)"
	}
	parts := []string{"keel", bi.Main.Version}
	if bi.Main.Version == "" {
		parts[1] = "(devel)"
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		parts = append(parts, "revision", rev[:min(len(rev), 12)])
		if t := set["vcs.time"]; t != "" {
			parts = append(parts, t)
		}
		if set["vcs.modified"] == "true" {
			parts = append(parts, "(dirty)")
		}
	}
	parts = append(parts, bi.GoVersion)
	if set["GOOS"] != "" {
		parts = append(parts, set["GOOS"]+"/"+set["GOARCH"])
	}
	return strings.Join(parts, " ")
}

// parseFlags parses args with fs, whose Usage must write to fs.Output().
// Help (-h, --help) goes to stdout and returns flag.ErrHelp (exit 0); a
// usage error's message and the usage go to stderr (exit 2). Afterwards
// fs writes to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(buf.Bytes())
	} else {
		stderr.Write(buf.Bytes())
	}
	return err
}
