package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/jsonscan"
)

// ErrLimitReached reports that a broken reply had already produced its
// whole output limit, so no continuation can add to it.
var ErrLimitReached = errors.New("stream: the reply had reached its output limit")

// Mode is how a broken reply is continued.
type Mode string

// Modes of continuation.
const (
	// Prefill sends the text so far as a partial assistant message, which
	// the model continues exactly: Claude up to 4.5, Nova.
	Prefill Mode = "prefill"
	// ContinueTurn sends the text so far as a complete assistant turn
	// followed by a user turn (ContinuePrompt) asking the model to go on,
	// for models that refuse a prefill (Claude 4.6 and later). The reply is
	// a fresh one, which may repeat the end of the text (the splicer drops
	// that overlap) or differ in wording from an unbroken reply.
	ContinueTurn Mode = "continue-turn"
)

// ContinuePrompt is the user turn that ends a ContinueTurn continuation.
// It is sent to real models: it asks for the rest of the reply only, from
// the exact point where it stopped.
const ContinuePrompt = "Your previous reply was cut off before it was finished. Continue it from exactly where it stopped, " +
	"even if that is in the middle of a word or a sentence. Do not repeat anything you already wrote, do not start over, " +
	"and do not add any introduction or comment: write only the rest of the reply."

// ContinuePromptTokens estimates the tokens of ContinuePrompt (about four
// characters a token), which a ContinueTurn continuation adds to the input.
const ContinuePromptTokens = (len(ContinuePrompt) + 3) / 4

// Continue returns the body of the request that continues a broken reply:
// body (a Converse request, or an Anthropic Messages InvokeModel body) with
// c.Prefill appended as an assistant message, and its output limit
// (inferenceConfig.maxTokens, or max_tokens) lowered by c.Tokens. When the
// conversation already ends with an assistant message (the caller's own
// prefill), the text is appended to it, since the reply continues it. With
// c.Mode ContinueTurn, a user message holding ContinuePrompt follows, so
// the conversation ends with a user turn; otherwise the assistant message
// is a prefill. An empty c.Prefill adds no message at all: the request is
// sent again. Other fields are kept as they are; key order is not.
func Continue(format Format, body []byte, c Continuation) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("stream: continuing a reply: the request body is not a JSON object")
	}
	var msgs []map[string]json.RawMessage
	if err := json.Unmarshal(m["messages"], &msgs); err != nil || len(msgs) == 0 {
		return nil, fmt.Errorf("stream: continuing a reply: the request has no messages")
	}
	if c.Prefill != "" {
		var err error
		if msgs, err = appendPrefill(format, msgs, c.Prefill); err != nil {
			return nil, err
		}
		if c.Mode == ContinueTurn {
			msgs = append(msgs, message(format, "user", ContinuePrompt))
		}
		if m["messages"], err = json.Marshal(msgs); err != nil {
			return nil, fmt.Errorf("stream: continuing a reply: %w", err)
		}
	}
	if format == Converse {
		var ic map[string]json.RawMessage
		if raw, ok := m["inferenceConfig"]; ok && json.Unmarshal(raw, &ic) == nil && ic != nil {
			if raw, ok := ic["maxTokens"]; ok {
				n, err := lower(raw, c.Tokens)
				if err != nil {
					return nil, err
				}
				ic["maxTokens"] = n
				m["inferenceConfig"], _ = json.Marshal(ic)
			}
		}
	} else if raw, ok := m["max_tokens"]; ok {
		n, err := lower(raw, c.Tokens)
		if err != nil {
			return nil, err
		}
		m["max_tokens"] = n
	}
	return json.Marshal(m)
}

// lower returns the limit raw less used, or ErrLimitReached.
func lower(raw json.RawMessage, used int) (json.RawMessage, error) {
	var n int
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("stream: continuing a reply: the output limit %s is not a number", raw)
	}
	if n-used < 1 {
		return nil, ErrLimitReached
	}
	return json.RawMessage(strconv.Itoa(n - used)), nil
}

func appendPrefill(format Format, msgs []map[string]json.RawMessage, prefill string) ([]map[string]json.RawMessage, error) {
	last := msgs[len(msgs)-1]
	var role string
	json.Unmarshal(last["role"], &role)
	if role != "assistant" {
		return append(msgs, message(format, "assistant", prefill)), nil
	}
	// The caller prefilled the reply: the model continued their text, so
	// the continuation's prefill is their text followed by ours.
	raw := last["content"]
	var s string
	if json.Unmarshal(raw, &s) == nil { // Anthropic's string form
		last["content"], _ = json.Marshal(s + prefill)
		return msgs, nil
	}
	var blocks []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fmt.Errorf("stream: continuing a reply: the final assistant message's content is neither text nor a list of blocks")
	}
	if n := len(blocks); n > 0 {
		if t, ok := blocks[n-1]["text"]; ok {
			var text string
			if json.Unmarshal(t, &text) == nil {
				blocks[n-1]["text"], _ = json.Marshal(text + prefill)
				last["content"], _ = json.Marshal(blocks)
				return msgs, nil
			}
		}
	}
	b := map[string]json.RawMessage{}
	b["text"], _ = json.Marshal(prefill)
	if format == Invoke {
		b["type"], _ = json.Marshal("text")
	}
	last["content"], _ = json.Marshal(append(blocks, b))
	return msgs, nil
}

// message returns a message of one text block (Converse) or of text
// (Anthropic's string form).
func message(format Format, role, text string) map[string]json.RawMessage {
	var content json.RawMessage
	if format == Converse {
		content, _ = json.Marshal([]map[string]string{{"text": text}})
	} else {
		content, _ = json.Marshal(text)
	}
	r, _ := json.Marshal(role)
	return map[string]json.RawMessage{"role": r, "content": content}
}

// Thinking reports whether the request turns extended thinking (reasoning)
// on: Anthropic models refuse a prefill then, so such a reply is not
// resumed. It looks at "thinking" (Anthropic bodies, and Converse's
// additionalModelRequestFields) and reasoning_config / reasoningConfig: one
// that is there, not null, and not an object whose "type" is "disabled"
// turns it on. A body that is not a JSON object (or a Converse body whose
// additionalModelRequestFields is not one) turns nothing on. It reads the
// body in one pass with jsonscan, deciding as encoding/json would (the last
// of duplicate keys counts; "type" matches in any case), without allocating.
func Thinking(format Format, body []byte) bool {
	var vals [len(thinkingKeys)][]byte // the last value of each key
	keys := func(s *jsonscan.Scanner) func(key []byte) {
		return func(key []byte) {
			for i, k := range thinkingKeys {
				if string(key) == k {
					vals[i] = s.Value()
				}
			}
		}
	}
	s := jsonscan.New(body, 0)
	var fields []byte
	if format == Converse {
		s.Object(func(key []byte) {
			if string(key) == "additionalModelRequestFields" {
				fields = s.Value()
			}
		})
	} else {
		s.Object(keys(&s))
	}
	if s.End(); s.Failed() {
		return false
	}
	if format == Converse {
		f := s.Sub(fields)
		if fields == nil || f.Null() {
			return false
		}
		if f.Object(keys(&f)); f.Failed() {
			return false
		}
	}
	for _, v := range vals {
		if v != nil && string(v) != "null" && !disabled(v) {
			return true
		}
	}
	return false
}

// thinkingKeys are the request fields that turn extended thinking on.
var thinkingKeys = [...]string{"thinking", "reasoning_config", "reasoningConfig"}

// disabled reports whether v, a checked JSON value, is an object whose
// "type" (in any case, the last one) is the string "disabled" in any case:
// what encoding/json finds decoding v into struct{ Type string }, which
// fails on anything but an object and on a "type" that is not a string or
// null.
func disabled(v []byte) bool {
	s := jsonscan.New(v, 0)
	if s.Peek() != '{' {
		return false
	}
	off, bad := false, false
	s.Object(func(key []byte) {
		if !bytes.EqualFold(key, []byte("type")) {
			return
		}
		switch s.Peek() {
		case 'n':
			s.Null() // leaves the field as it was
		case '"':
			off = bytes.EqualFold(s.Bytes(), []byte("disabled"))
		default:
			bad = true
		}
	})
	return off && !bad
}

// RefusesPrefill reports whether the model is known to refuse a prefill:
// an Anthropic model whose row in keel's model table takes none (Claude 4.6
// and later). model may be a model id, an inference profile id or an ARN; a
// model the table does not list (an application inference profile's ARN
// names none) is not known to refuse.
func RefusesPrefill(model string) bool {
	m, ok := bedrock.LookupModel(model)
	return ok && m.RefusesPrefill()
}

// AcceptsPrefill reports whether the model is known to continue a partial
// assistant message, as keel's model table (internal/bedrock/models.json)
// records: Anthropic Claude models up to 4.5 and Amazon Nova. Claude 4.6
// and later refuse a prefill ("This model does not support assistant
// message prefill"); a model the table does not list is not known to honour
// one. model may be a model id, an inference profile id or an ARN.
func AcceptsPrefill(model string) bool {
	m, ok := bedrock.LookupModel(model)
	return ok && m.Prefill
}
