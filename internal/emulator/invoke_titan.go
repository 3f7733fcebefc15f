package emulator

import (
	"encoding/json"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// titanDefaultMaxCount is maxTokenCount when a Titan body leaves it out.
const titanDefaultMaxCount = 512

func (x *exchange) parseTitan(body []byte) (invokeParams, bool) {
	p := invokeParams{maxTokens: titanDefaultMaxCount}
	var b struct {
		InputText            *string `json:"inputText"`
		TextGenerationConfig *struct {
			MaxTokenCount *int     `json:"maxTokenCount"`
			StopSequences []string `json:"stopSequences"`
		} `json:"textGenerationConfig"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		x.malformed("#: expected a JSON object (" + err.Error() + ")")
		return p, false
	}
	if b.InputText == nil {
		x.malformed("#: required key [inputText] not found")
		return p, false
	}
	if c := b.TextGenerationConfig; c != nil {
		p.stops = c.StopSequences
		if c.MaxTokenCount != nil {
			p.maxTokens = *c.MaxTokenCount
			if !x.checkMaxTokens("#/textGenerationConfig/maxTokenCount", p.maxTokens) {
				return p, false
			}
		}
	}
	x.msgs = append(x.msgs, reply.Message{Role: "user", Text: *b.InputText})
	return p, true
}

// appendTitanResults appends a complete Titan Text InvokeModel response.
func appendTitanResults(b []byte, r *reply.Reply) []byte {
	b = appendIntField(append(b, '{'), "inputTextTokenCount", int64(r.InputTokens))
	b = append(b, `,"results":[{`...)
	b = appendIntField(b, "tokenCount", int64(r.OutputTokens))
	b = appendStringField(b, "outputText", r.Text)
	b = appendStringField(b, "completionReason", titanStop(r.StopReason))
	return append(b, `}]}`...)
}

func titanStop(s reply.StopReason) string {
	switch s {
	case reply.MaxTokens:
		return "LENGTH"
	case reply.StopSequence:
		return "STOP_CRITERIA_MET"
	}
	return "FINISH"
}

// appendTitanToken appends the fields of a Titan stream's i-th chunk, which
// carries text; the completion reason comes in the last.
func appendTitanToken(b []byte, r *reply.Reply, text string, i int, last bool) []byte {
	b = appendStringField(b, "outputText", text)
	b = append(b, `,"index":0`...)
	b = appendIntField(b, "totalOutputTextTokenCount", int64(min(i+1, r.OutputTokens)))
	if last {
		b = appendStringField(b, "completionReason", titanStop(r.StopReason))
	} else {
		b = append(b, `,"completionReason":null`...)
	}
	return appendIntField(b, "inputTextTokenCount", int64(r.InputTokens))
}
