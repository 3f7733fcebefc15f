package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/keel-run/keel/internal/admission"
	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
)

// This file fits a call's body to a fallback target whose model takes
// another API version or parameter set than the model the caller named:
// an anthropic_version the target does not take, sampling parameters that
// version removed, a max tokens above the target's maximum output, a
// prefill the target refuses. Every fact comes from the model table
// (internal/bedrock/models.json); docs/routes.md has the rules as a table.

// Adaptation actions (Adaptation.Action).
const (
	// AdaptTranslated: the value was replaced by one the target takes
	// (anthropic_version).
	AdaptTranslated = "translated"
	// AdaptDropped: the field was removed, because the version the body
	// was moved to does not have it (temperature, top_p, top_k). The reply
	// is sampled with the model's defaults.
	AdaptDropped = "dropped"
	// AdaptLowered: a max tokens above the target's maximum output was
	// lowered to that maximum; the reply may stop sooner than the caller
	// allowed.
	AdaptLowered = "lowered"
)

// Adaptation is one change keel made to a call's body before sending it
// to a fallback target that would have refused the body as written.
type Adaptation struct {
	// Field is the body's field, as a dotted path ("anthropic_version",
	// "temperature", "inferenceConfig.maxTokens").
	Field string
	// Action is AdaptTranslated, AdaptDropped or AdaptLowered.
	Action string
	// From is the field's value in the caller's body, as JSON text; To the
	// value sent (empty when dropped).
	From, To string
}

// String returns "field: action from -> to".
func (a Adaptation) String() string {
	if a.To == "" {
		return a.Field + ": " + a.Action + " (" + a.From + ")"
	}
	return a.Field + ": " + a.Action + " " + a.From + " -> " + a.To
}

// adaptError is a fallback target the call's body cannot be sent to: the
// only fix would change what the reply means.
type adaptError struct {
	entry  *catalog.Entry
	target attempt.Target
	why    string
}

func (e *adaptError) Error() string {
	return fmt.Sprintf("engine: not sent to %s: %s", e.target, e.why)
}

// CatalogEntry lets the classifier map the error to its entry.
func (e *adaptError) CatalogEntry() *catalog.Entry { return e.entry }

// removal is what an Anthropic Messages API version removed. fields only
// steer sampling: keel drops them when it moves a body to the version, and
// the reply keeps its meaning. content names what the version refuses in
// a messages array ("" for nothing): that is the caller's content, so a
// body with it is not moved.
type removal struct {
	fields  []string
	content func(messages json.RawMessage) string
}

// removedIn lists what each version removed, as Anthropic's versioning page
// says (docs/routes.md cites it).
var removedIn = map[string]removal{
	bedrock.AnthropicVersion20261021: {fields: []string{"temperature", "top_p", "top_k"}, content: refusesContent20261021},
}

// maxTokensField is where an InvokeModel body of each format, and a
// Converse body ("converse"), sets its output limit.
var maxTokensField = map[string][]string{
	"converse":  {"inferenceConfig", "maxTokens"},
	"anthropic": {"max_tokens"},
	"nova":      {"inferenceConfig", "max_new_tokens"},
	"llama":     {"max_gen_len"},
	"titan":     {"textGenerationConfig", "maxTokenCount"},
}

// adapted is the body a pass sends to its current target.
type adapted struct {
	ti      int // 1 + the target it was made for; 0 before the first
	orig    admission.Estimate
	changes []Adaptation
}

// adapt is the path's first stage: it fits the round's body to the current
// target's model, once per target, or skips a target the body cannot be
// fitted to. The call's own model gets the body as the caller wrote it.
func (p *pass) adapt(*try) verdict {
	if p.ad.ti == p.ti+1 {
		return goOn
	}
	if p.ad.ti == 0 {
		p.ad.orig = p.est
	}
	p.ad.ti = p.ti + 1
	body, changes := p.rd.body, []Adaptation(nil)
	to, ok := bedrock.LookupModel(p.t.Model)
	if from, known := bedrock.LookupModel(p.call.Model); ok && (!known || from != to) {
		var err error
		body, changes, err = adaptBody(p.call.Op, p.rd.body, to)
		var ae *adaptError
		if errors.As(err, &ae) {
			ae.target = p.t
			p.rep.Attempts = append(p.rep.Attempts, Attempt{Target: p.t, Start: p.e.clk.Now(), Skipped: true, Code: ae.entry.Code, Resume: p.rd.resume})
			p.rep.Target = p.t
			// Like an open breaker, the refusal does not hide the failure
			// that sent the call here; it joins it.
			if p.last == nil {
				p.last = &Error{Entry: ae.entry, Message: ae.Error(), Report: p.rep, Err: ae}
			} else {
				p.last.Err = errors.Join(p.last.Err, ae)
			}
			p.e.logf(p.ctx, slog.LevelWarn, ae.Error(), p.call, p.t, p.n, p.last)
			p.e.fallbackMetric(p.t, "body-refused")
			return next
		}
	}
	p.ad.changes = changes
	p.req.Body, p.est = body, p.ad.orig
	if changes != nil {
		p.est, _ = admission.EstimateBody(body)
	}
	if p.req.BodySHA256 != "" {
		p.req.BodySHA256 = attempt.PayloadHash(body)
	}
	return goOn
}

// adaptBody returns body as a call of op may send it to model to, and the
// changes made; body itself when none is needed, or when it is not a JSON
// object (the target says what is wrong with it). The error is an
// *adaptError when the body cannot be sent to the model at all.
//
// CountTokens bodies are left alone. An InvokeModel body is read in the
// target's format: the route sends one only to models of the caller's.
func adaptBody(op attempt.Op, body []byte, to *bedrock.ModelInfo) ([]byte, []Adaptation, error) {
	format := to.Format
	switch op {
	case attempt.Converse, attempt.ConverseStream:
		format = "converse"
	case attempt.Invoke, attempt.InvokeWithResponseStream:
	default:
		return body, nil, nil
	}
	obj, err := parseObject(body)
	if err != nil {
		return body, nil, nil
	}
	var changes []Adaptation
	if format == "anthropic" || format == "converse" {
		if to.RefusesPrefill() && endsWithAssistant(obj.get("messages")) {
			return nil, nil, &adaptError{entry: catalog.Must(catalog.CodePrefillUnsupported),
				why: "the body ends in an assistant message (a prefill), which " + to.ID + " refuses; dropping it would change where the reply starts"}
		}
	}
	if format == "anthropic" {
		changes, err = adaptVersion(obj, to)
		if err != nil {
			return nil, nil, err
		}
	}
	if c, ok := lowerMaxTokens(obj, maxTokensField[format], to.MaxOutput); ok {
		changes = append(changes, c)
	}
	if changes == nil {
		return body, nil, nil
	}
	return obj.encode(), changes, nil
}

// adaptVersion moves an Anthropic body's anthropic_version to one the
// model takes: the newest it takes that is not newer than the body's,
// else the oldest it takes. A version no model takes, or none, is left
// for the target to refuse. Moving to a newer version drops the sampling
// fields it removed; content it removed stops the move.
func adaptVersion(obj *object, to *bedrock.ModelInfo) ([]Adaptation, error) {
	raw := obj.get("anthropic_version")
	var v string
	if raw == nil || json.Unmarshal(raw, &v) != nil {
		return nil, nil
	}
	all := bedrock.AnthropicVersions()
	at := slices.Index(all, v)
	if at < 0 || to.AcceptsVersion(v) {
		return nil, nil
	}
	nv := ""
	for i := at - 1; i >= 0 && nv == ""; i-- {
		if to.AcceptsVersion(all[i]) {
			nv = all[i]
		}
	}
	for i := at + 1; i < len(all) && nv == ""; i++ {
		if to.AcceptsVersion(all[i]) {
			nv = all[i]
		}
	}
	if nv == "" {
		return nil, nil // the table lists a version for every Anthropic model
	}
	changes := []Adaptation{{Field: "anthropic_version", Action: AdaptTranslated, From: string(raw), To: strconv.Quote(nv)}}
	obj.set("anthropic_version", []byte(strconv.Quote(nv)))
	for i := at + 1; i <= slices.Index(all, nv); i++ {
		r := removedIn[all[i]]
		if r.content != nil {
			if why := r.content(obj.get("messages")); why != "" {
				return nil, &adaptError{entry: catalog.Must(catalog.CodeRemovedInAPIVersion),
					why: to.ID + " takes anthropic_version " + nv + " (not " + v + "), which removed " + why}
			}
		}
		for _, f := range r.fields {
			if old := obj.get(f); old != nil && string(old) != "null" {
				changes = append(changes, Adaptation{Field: f, Action: AdaptDropped, From: string(old)})
			}
			obj.drop(f)
		}
	}
	return changes, nil
}

// refusesContent20261021 names the content of an Anthropic messages array that
// version 2026-10-21 refuses, "" for none: a document block in an
// assistant message, citations on user text.
func refusesContent20261021(raw json.RawMessage) string {
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &msgs) != nil {
		return ""
	}
	for i, m := range msgs {
		var blocks []struct {
			Type      string            `json:"type"`
			Citations []json.RawMessage `json:"citations"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue // a string, or something the target will refuse anyway
		}
		for j, b := range blocks {
			switch {
			case m.Role == "assistant" && b.Type == "document":
				return fmt.Sprintf("document blocks in assistant messages (messages.%d.content.%d)", i, j)
			case m.Role == "user" && b.Type == "text" && len(b.Citations) > 0:
				return fmt.Sprintf("citations on user text (messages.%d.content.%d)", i, j)
			}
		}
	}
	return ""
}

// endsWithAssistant reports whether a messages array ends in an assistant
// message.
func endsWithAssistant(raw json.RawMessage) bool {
	var msgs []struct {
		Role string `json:"role"`
	}
	return json.Unmarshal(raw, &msgs) == nil && len(msgs) > 0 && msgs[len(msgs)-1].Role == "assistant"
}

// lowerMaxTokens lowers the integer at path in obj to limit when it is
// above it.
func lowerMaxTokens(obj *object, path []string, limit int) (Adaptation, bool) {
	if len(path) == 0 {
		return Adaptation{}, false
	}
	raw := obj.get(path[0])
	if len(path) > 1 {
		inner, err := parseObject(raw)
		if err != nil {
			return Adaptation{}, false
		}
		c, ok := lowerMaxTokens(inner, path[1:], limit)
		if ok {
			c.Field = path[0] + "." + c.Field
			obj.set(path[0], inner.encode())
		}
		return c, ok
	}
	var n int64
	if raw == nil || json.Unmarshal(raw, &n) != nil || n <= int64(limit) {
		return Adaptation{}, false
	}
	to := strconv.Itoa(limit)
	obj.set(path[0], []byte(to))
	return Adaptation{Field: path[0], Action: AdaptLowered, From: string(raw), To: to}, true
}

// object is a JSON object's members in their order, values kept as they
// were written, so that a body changes only where keel changes it.
type object struct{ fields []field }

type field struct {
	key string
	val json.RawMessage
}

func parseObject(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	o := &object{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o.fields = append(o.fields, field{key: t.(string), val: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

// get returns the value of key (the last, as a JSON decoder reads a key
// given twice), nil when absent.
func (o *object) get(key string) json.RawMessage {
	for i := len(o.fields) - 1; i >= 0; i-- {
		if o.fields[i].key == key {
			return o.fields[i].val
		}
	}
	return nil
}

// set replaces every value of key.
func (o *object) set(key string, val json.RawMessage) {
	for i := range o.fields {
		if o.fields[i].key == key {
			o.fields[i].val = val
		}
	}
}

// drop removes key.
func (o *object) drop(key string) {
	o.fields = slices.DeleteFunc(o.fields, func(f field) bool { return f.key == key })
}

func (o *object) encode() []byte {
	b := []byte{'{'}
	for i, f := range o.fields {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.key)
		b = append(append(append(b, k...), ':'), f.val...)
	}
	return append(b, '}')
}
