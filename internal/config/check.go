package config

import (
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keel-run/keel/internal/textdist"
)

// Error is one problem in a configuration: where it is and what is wrong.
// Parse and Load report every problem of a file at once, joined with
// errors.Join in line order; errors.As finds the first.
type Error struct {
	File string // the file, when read by Load
	Line int    // 1-based; 0 when not known (a Config built in Go)
	// Key is the key's path, such as retry.max_attempts or
	// routes[0].targets[1].region; empty for the file as a whole and for an
	// unknown key (Msg names it).
	Key string
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "config: line %d: ", e.Line)
	default:
		b.WriteString("config: ")
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// checker walks a document's node tree against the Config type: unknown and
// duplicate keys, values of the wrong type. It records the line of every
// key path, so that Validate's problems can be placed too.
type checker struct {
	errs  []*Error
	lines map[string]int // key path -> line
	// seen holds the anchored nodes already checked as a type: an alias
	// to one is not walked again, so a file of aliases to aliases (an
	// "alias bomb") is checked in time linear in its size.
	seen map[aliased]bool
}

type aliased struct {
	n *yaml.Node
	t reflect.Type
}

func (c *checker) add(line int, key, format string, args ...any) {
	c.errs = append(c.errs, &Error{Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeFor[Duration]()

// walk checks n as a value of type t at path.
func (c *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		for n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if c.seen[aliased{n, t}] {
			return // checked where it was first met
		}
		if c.seen == nil {
			c.seen = map[aliased]bool{}
		}
		c.seen[aliased{n, t}] = true
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // absent: the zero value
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		var d Duration
		if err := n.Decode(&d); err != nil {
			c.add(n.Line, path, "%s", durationMsg(n))
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(n.Line, path, "want a mapping of keys, got %s", describe(n))
			return
		}
		c.mapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(n.Line, path, "want a list such as [a, b] or lines starting with -, got %s", describe(n))
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.lines[p] = e.Line
			c.walk(e, t.Elem(), p)
		}
	default:
		if n.Kind != yaml.ScalarNode {
			c.add(n.Line, path, "want %s, got %s", want(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.add(n.Line, path, "want %s, got %q", want(t), n.Value)
		}
	}
}

// mapping checks the keys of n against the yaml tags of struct type t.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	first := map[string]int{}
	// A duplicate key is reported here and dropped, so that decoding (which
	// refuses a mapping with one) goes on to check the rest.
	kept := n.Content[:0:0]
	defer func() { n.Content = kept }()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			// <<: *anchor merges the anchor's keys here (a mapping, or a
			// list of them): they are checked as this mapping's.
			kept = append(kept, k, v)
			c.merge(v, t, path)
			continue
		}
		where := ""
		if path != "" {
			where = " in " + path
		}
		if at, dup := first[k.Value]; dup {
			c.add(k.Line, "", "duplicate key %q%s (first at line %d)", k.Value, where, at)
			continue
		}
		first[k.Value] = k.Line
		kept = append(kept, k, v)
		ft, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown key %q%s", k.Value, where)
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			c.add(k.Line, "", "%s", msg)
			continue
		}
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		c.lines[p] = k.Line
		c.walk(v, ft, p)
	}
}

// merge checks the value of a merge key (<<): a mapping, or a list of them.
func (c *checker) merge(v *yaml.Node, t reflect.Type, path string) {
	for v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			c.merge(e, t, path)
		}
		return
	}
	c.walk(v, t, path)
}

// line returns the line of path, or of its nearest ancestor in the file
// (a required key that is absent), or 0.
func (c *checker) line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func durationMsg(n *yaml.Node) string {
	return fmt.Sprintf("want a duration such as 500ms or 2s, got %q", n.Value)
}

// want names what a value of type t is written as.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "a whole number"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// describe names the kind of a node for an error message.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

// suggest returns the name closest to key when it is close enough to be a
// typo (an edit distance of at most a third of its length, at least 2), or
// "".
func suggest(key string, names []string) string {
	best, bestD := "", max(2, len(key)/3)+1
	for _, n := range names {
		if d := textdist.Levenshtein(key, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns the YAML parser's error into an Error with its line.
func syntaxError(err error) *Error {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// sortErrors orders errs by line, keeping the order of those on one line.
func sortErrors(errs []*Error) {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
}
