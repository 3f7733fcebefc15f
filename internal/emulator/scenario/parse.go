package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/emulator/fault"
	"github.com/keel-run/keel/internal/emulator/quota"
)

// maxErrors caps how many problems Parse reports at once.
const maxErrors = 20

// Parse reads a scenario file. It is strict: an unknown key, a key given
// twice, a value of the wrong type or out of range, a code the catalog does
// not know, a rule that does nothing, or a second YAML document is an error
// naming the line (and the key), such as
//
//	scenario: line 7: rules[0].errors[0].probability: probability 1.5 is not between 0 and 1
//
// Every problem found is reported (up to 20), joined with errors.Join. Empty
// input is the empty scenario, under which the emulator always behaves.
func Parse(b []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return nil, syntaxError(err)
	}
	// A scenario is one document: what follows a second "---" would
	// otherwise be dropped without a word.
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == io.EOF:
	case err != nil:
		return nil, syntaxError(err)
	default:
		// The document node's line is that of its "---".
		return nil, fmt.Errorf("scenario: line %d: a second YAML document starts here; "+
			"a scenario file is one document: put every rule and quota in the first", next.Line)
	}
	s := &Scenario{source: append([]byte(nil), b...)}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return s, nil
	}
	p := &parser{}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return s, nil
	}
	p.fields(root, "", []field{
		{"description", func(v *yaml.Node, at string) { s.Description = p.str(v, at) }},
		{"quotas", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { s.Quotas = append(s.Quotas, p.quota(v, at)) })
		}},
		{"rules", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { s.Rules = append(s.Rules, p.rule(v, at, len(s.Rules))) })
		}},
		{"clock_skew", func(v *yaml.Node, at string) {
			s.ClockSkew = p.signedDuration(v, at)
			p.check(v, at, checkClockSkew(s.ClockSkew))
		}},
		{"deny", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { s.Deny = append(s.Deny, p.denial(v, at)) })
		}},
		{"jobs", func(v *yaml.Node, at string) { s.Jobs = p.jobs(v, at) }},
	})
	names := map[string]int{}
	for i, r := range s.Rules {
		if j, dup := names[r.Name]; dup {
			p.errs = append(p.errs, fmt.Errorf("scenario: line %d: rules[%d].name: %q is already used by rules[%d]", r.line, i, r.Name, j))
			continue
		}
		names[r.Name] = i
	}
	if len(p.errs) > maxErrors {
		p.errs = append(p.errs[:maxErrors], fmt.Errorf("scenario: %d more problems not shown", len(p.errs)-maxErrors))
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// syntaxError words a YAML syntax error.
func syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.Contains(msg, "expected alphabetic or numeric character") {
		// A bare '*' starts a YAML alias, the commonest slip in this format.
		msg += ` (a value starting with '*' must be quoted, as in model: "*claude*")`
	}
	return fmt.Errorf("scenario: %s", msg)
}

// parser walks a YAML tree and collects every problem it meets.
type parser struct {
	errs []error
}

// field is one key a mapping may hold and what to do with its value.
type field struct {
	key string
	fn  func(v *yaml.Node, at string)
}

func (p *parser) fail(n *yaml.Node, at, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if at != "" {
		msg = at + ": " + msg
	}
	p.errs = append(p.errs, fmt.Errorf("scenario: line %d: %s", n.Line, msg))
}

// check records err, if any, against node n.
func (p *parser) check(n *yaml.Node, at string, err error) {
	if err != nil {
		p.fail(n, at, "%v", err)
	}
}

// fields reads mapping n: each key must be one of fields, at most once.
func (p *parser) fields(n *yaml.Node, at string, fields []field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, at, "want a mapping with keys %s, got %s", keyList(fields), describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		path := name
		if at != "" {
			path = at + "." + name
		}
		if seen[name] {
			p.fail(k, path, "key is given twice")
			continue
		}
		seen[name] = true
		var fn func(*yaml.Node, string)
		for _, f := range fields {
			if f.key == name {
				fn = f.fn
				break
			}
		}
		if fn == nil {
			where := "here"
			if at != "" {
				where = "in " + at
			}
			p.fail(k, "", "unknown key %q %s; want one of %s", name, where, keyList(fields))
			continue
		}
		fn(v, path)
	}
}

// list reads sequence n, calling item for each element as at[i].
func (p *parser) list(n *yaml.Node, at string, item func(v *yaml.Node, at string)) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, at, "want a list, got %s", describe(n))
		return
	}
	for i, v := range n.Content {
		if isNull(resolve(v)) {
			p.fail(v, fmt.Sprintf("%s[%d]", at, i), "the list item is empty")
			continue
		}
		item(v, fmt.Sprintf("%s[%d]", at, i))
	}
}

func (p *parser) str(n *yaml.Node, at string) string {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.fail(n, at, "want a string, got %s", describe(n))
		return ""
	}
	return n.Value
}

// duration reads a Go duration such as 500ms or 1m30s; a bare 0 is allowed.
func (p *parser) duration(n *yaml.Node, at string) time.Duration {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Value == "0" {
		return 0
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.fail(n, at, "want a duration such as 500ms or 30s, got %s", describe(n))
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		p.fail(n, at, "want a duration such as 500ms or 30s, got %q", n.Value)
		return 0
	}
	if d < 0 {
		p.fail(n, at, "duration %s is negative", n.Value)
		return 0
	}
	return d
}

// signedDuration reads a Go duration that may be negative, such as 10m or
// -90s; a bare 0 is allowed.
func (p *parser) signedDuration(n *yaml.Node, at string) time.Duration {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" && n.Value == "0" {
		return 0
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if d, err := time.ParseDuration(n.Value); err == nil {
			return d
		}
	}
	p.fail(n, at, "want a duration such as 10m or -90s, got %s", describe(n))
	return 0
}

// denial reads a deny entry; its code defaults to AccessDeniedException.
func (p *parser) denial(n *yaml.Node, at string) Denial {
	d := Denial{Code: catalog.CodeAccessDenied}
	var haveModel bool
	p.fields(n, at, []field{
		{"model", func(v *yaml.Node, at string) { haveModel = true; d.Model = p.str(v, at) }},
		{"region", func(v *yaml.Node, at string) { d.Region = p.str(v, at) }},
		{"code", func(v *yaml.Node, at string) {
			c := p.str(v, at)
			if c == "" {
				return
			}
			canon, err := checkDenyCode(c)
			p.check(v, at, err)
			d.Code = canon
		}},
		{"message", func(v *yaml.Node, at string) { d.Message = p.str(v, at) }},
	})
	p.require(n, at, haveModel, "model")
	return d
}

// probability reads a number from 0 to 1, or a percentage such as "25%".
func (p *parser) probability(n *yaml.Node, at string) float64 {
	n = resolve(n)
	var v float64
	var err error
	switch {
	case n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!float" || n.ShortTag() == "!!int"):
		v, err = strconv.ParseFloat(n.Value, 64)
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.HasSuffix(n.Value, "%"):
		v, err = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(n.Value, "%")), 64)
		v /= 100
	default:
		err = errors.New("not a number")
	}
	if err != nil || math.IsNaN(v) {
		p.fail(n, at, "want a probability from 0 to 1 (or a percentage such as 25%%), got %s", describe(n))
		return 0
	}
	p.check(n, at, checkProbability(v))
	return v
}

// count reads a non-negative integer.
func (p *parser) count(n *yaml.Node, at string) int {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.fail(n, at, "want a whole number, got %s", describe(n))
		return 0
	}
	v, err := strconv.ParseInt(n.Value, 0, 32)
	if err != nil {
		p.fail(n, at, "want a whole number, got %q", n.Value)
		return 0
	}
	if v < 0 {
		p.fail(n, at, "%d is negative", v)
		return 0
	}
	return int(v)
}

// limit reads a non-negative quota such as 200000 or 2_000_000.
func (p *parser) limit(n *yaml.Node, at string) int64 {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.fail(n, at, "want a whole number, got %s", describe(n))
		return 0
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil || v < 0 {
		p.fail(n, at, "want a whole number of 0 or more, got %q", n.Value)
		return 0
	}
	return v
}

func (p *parser) code(n *yaml.Node, at string, use codeUse) string {
	c := p.str(n, at)
	if c == "" {
		return ""
	}
	canon, err := checkCode(c, use)
	p.check(n, at, err)
	return canon
}

// quota reads a quotas entry. The shape keys (burst, start_level,
// refill_every) start from quota.DefaultShape, so one left out keeps its
// default.
func (p *parser) quota(n *yaml.Node, at string) quota.Rule {
	var q quota.Rule
	shape := quota.DefaultShape()
	shaped := false
	// set applies one shape key read without error, and checks a default
	// shape with only that key changed, so the error names the key's line.
	set := func(v *yaml.Node, at string, errs int, change func(*quota.Shape)) {
		shaped = true
		if len(p.errs) > errs {
			return
		}
		change(&shape)
		one := quota.DefaultShape()
		change(&one)
		p.check(v, at, one.Validate())
	}
	p.fields(n, at, []field{
		{"model", func(v *yaml.Node, at string) { q.Model = p.str(v, at) }},
		{"region", func(v *yaml.Node, at string) { q.Region = p.str(v, at) }},
		{"tokens_per_minute", func(v *yaml.Node, at string) { q.Limits.TokensPerMinute = p.limit(v, at) }},
		{"requests_per_minute", func(v *yaml.Node, at string) { q.Limits.RequestsPerMinute = p.limit(v, at) }},
		{"tokens_per_day", func(v *yaml.Node, at string) { q.Limits.TokensPerDay = p.limit(v, at) }},
		{"burst", func(v *yaml.Node, at string) {
			errs := len(p.errs)
			d := p.duration(v, at)
			set(v, at, errs, func(s *quota.Shape) { s.Burst = d })
		}},
		{"start_level", func(v *yaml.Node, at string) {
			errs := len(p.errs)
			f := p.number(v, at)
			set(v, at, errs, func(s *quota.Shape) { s.StartLevel = f })
		}},
		{"refill_every", func(v *yaml.Node, at string) {
			errs := len(p.errs)
			d := p.duration(v, at)
			set(v, at, errs, func(s *quota.Shape) { s.RefillEvery = d })
		}},
	})
	if shaped {
		q.Limits.Shape = &shape
		if q.Limits.TokensPerMinute == 0 && q.Limits.RequestsPerMinute == 0 {
			p.fail(n, at, "burst, start_level and refill_every shape the per-minute buckets; "+
				"set tokens_per_minute or requests_per_minute, or leave them out")
		}
	}
	return q
}

// number reads a number such as 0.25 or 1.
func (p *parser) number(n *yaml.Node, at string) float64 {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!float" || n.ShortTag() == "!!int") {
		if v, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return v
		}
	}
	p.fail(n, at, "want a number, got %s", describe(n))
	return 0
}

func (p *parser) rule(n *yaml.Node, at string, i int) Rule {
	n = resolve(n)
	r := Rule{line: n.Line, Latency: Latency{Probability: 1}}
	var toNode *yaml.Node
	p.fields(n, at, []field{
		{"name", func(v *yaml.Node, at string) { r.Name = p.str(v, at) }},
		{"model", func(v *yaml.Node, at string) { r.Model = p.str(v, at) }},
		{"region", func(v *yaml.Node, at string) { r.Region = p.str(v, at) }},
		{"operation", func(v *yaml.Node, at string) {
			r.Operation = p.str(v, at)
			p.check(v, at, checkOperation(r.Operation))
		}},
		{"tier", func(v *yaml.Node, at string) {
			r.Tier = p.str(v, at)
			p.check(v, at, checkTier(r.Tier))
		}},
		{"from", func(v *yaml.Node, at string) { r.From = p.duration(v, at) }},
		{"to", func(v *yaml.Node, at string) { toNode, r.To = v, p.duration(v, at) }},
		{"errors", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { r.Errors = append(r.Errors, p.errorFault(v, at)) })
		}},
		{"refuse", func(v *yaml.Node, at string) { r.Refuse = p.probability(v, at) }},
		{"hang", func(v *yaml.Node, at string) { r.Hang = p.probability(v, at) }},
		{"latency", func(v *yaml.Node, at string) { r.Latency = p.latency(v, at) }},
		{"stream", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { r.Stream = append(r.Stream, p.streamFault(v, at)) })
		}},
		{"outages", func(v *yaml.Node, at string) {
			p.list(v, at, func(v *yaml.Node, at string) { r.Outages = append(r.Outages, p.outage(v, at)) })
		}},
		{"cold_start", func(v *yaml.Node, at string) { c := p.coldStart(v, at); r.ColdStart = &c }},
	})
	if r.Name == "" {
		r.Name = fmt.Sprintf("rules[%d]", i)
	}
	if toNode != nil && r.To <= r.From {
		p.fail(toNode, at+".to", "to %v is not after from %v", r.To, r.From)
	}
	if n.Kind == yaml.MappingNode && !r.acts() {
		p.fail(n, at, "the rule does nothing; give it errors, refuse, hang, latency, stream, outages or cold_start")
	}
	return r
}

// acts reports whether r can change a plan.
func (r *Rule) acts() bool {
	return len(r.Errors) > 0 || r.Refuse > 0 || r.Hang > 0 || r.Latency.Fixed > 0 || r.Latency.Jitter > 0 ||
		len(r.Stream) > 0 || len(r.Outages) > 0 || r.ColdStart != nil
}

func (p *parser) errorFault(n *yaml.Node, at string) ErrorFault {
	e := ErrorFault{}
	var haveCode, haveP bool
	p.fields(n, at, []field{
		{"code", func(v *yaml.Node, at string) { haveCode = true; e.Code = p.code(v, at, useReply) }},
		{"message", func(v *yaml.Node, at string) { e.Message = p.str(v, at) }},
		{"probability", func(v *yaml.Node, at string) { haveP = true; e.Probability = p.probability(v, at) }},
	})
	p.require(n, at, haveCode, "code")
	p.require(n, at, haveP, "probability")
	return e
}

func (p *parser) require(n *yaml.Node, at string, have bool, key string) {
	if !have && resolve(n).Kind == yaml.MappingNode {
		p.fail(n, at, "%s is required", key)
	}
}

func (p *parser) latency(n *yaml.Node, at string) Latency {
	l := Latency{Probability: 1}
	p.fields(n, at, []field{
		{"fixed", func(v *yaml.Node, at string) { l.Fixed = p.duration(v, at) }},
		{"jitter", func(v *yaml.Node, at string) { l.Jitter = p.duration(v, at) }},
		{"probability", func(v *yaml.Node, at string) { l.Probability = p.probability(v, at) }},
	})
	return l
}

func (p *parser) streamFault(n *yaml.Node, at string) StreamFault {
	f := StreamFault{}
	var kindNode, codeNode *yaml.Node
	var haveP bool
	p.fields(n, at, []field{
		{"kind", func(v *yaml.Node, at string) {
			kindNode = v
			f.Kind = fault.MidStreamKind(p.str(v, at))
			p.check(v, at, checkKind(f.Kind))
		}},
		{"after", func(v *yaml.Node, at string) { f.After = p.count(v, at) }},
		{"code", func(v *yaml.Node, at string) { codeNode = v; f.Code = p.str(v, at) }},
		{"message", func(v *yaml.Node, at string) { f.Message = p.str(v, at) }},
		{"probability", func(v *yaml.Node, at string) { haveP = true; f.Probability = p.probability(v, at) }},
	})
	p.require(n, at, kindNode != nil, "kind")
	p.require(n, at, haveP, "probability")
	if kindNode != nil && checkKind(f.Kind) == nil {
		where, whereAt := codeNode, at+".code"
		if where == nil {
			where, whereAt = n, at
		}
		canon, err := checkStreamCode(f.Kind, f.Code)
		p.check(where, whereAt, err)
		f.Code = canon
	}
	return f
}

func (p *parser) outage(n *yaml.Node, at string) Outage {
	o := Outage{}
	var toNode, ansNode *yaml.Node
	p.fields(n, at, []field{
		{"from", func(v *yaml.Node, at string) { o.From = p.duration(v, at) }},
		{"to", func(v *yaml.Node, at string) { toNode, o.To = v, p.duration(v, at) }},
		{"answer", func(v *yaml.Node, at string) {
			ansNode = v
			n := resolve(v)
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
				o.Answer = n.Value // 503, 500
				return
			}
			o.Answer = p.str(v, at)
		}},
		{"message", func(v *yaml.Node, at string) { o.Message = p.str(v, at) }},
	})
	if toNode != nil && o.To <= o.From {
		p.fail(toNode, at+".to", "to %v is not after from %v", o.To, o.From)
	}
	ans, err := checkAnswer(o.Answer)
	if ansNode != nil {
		p.check(ansNode, at+".answer", err)
	}
	o.Answer = ans
	return o
}

func (p *parser) coldStart(n *yaml.Node, at string) ColdStart {
	c := ColdStart{Idle: DefaultColdIdle, Requests: DefaultColdRequests, Within: DefaultColdWithin}
	positive := func(v *yaml.Node, at string) time.Duration {
		d := p.duration(v, at)
		if d == 0 {
			p.fail(v, at, "want a duration above zero")
		}
		return d
	}
	p.fields(n, at, []field{
		{"idle", func(v *yaml.Node, at string) { c.Idle = positive(v, at) }},
		{"requests", func(v *yaml.Node, at string) {
			c.Requests = p.count(v, at)
			if c.Requests == 0 {
				p.fail(v, at, "want 1 or more")
			}
		}},
		{"within", func(v *yaml.Node, at string) { c.Within = positive(v, at) }},
		{"message", func(v *yaml.Node, at string) { c.Message = p.str(v, at) }},
	})
	return c
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}
