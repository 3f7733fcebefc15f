package emulator

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"

	"github.com/keel-run/keel/internal/emulator/reply"
)

// serveCountTokens serves CountTokens: {"input": {"converse": {...}}} or
// {"input": {"invokeModel": {"body": "<base64 InvokeModel body>"}}}, answered
// with {"inputTokens": n}, the count the same input would be charged.
func (x *exchange) serveCountTokens() {
	var b struct {
		Input *struct {
			Converse    json.RawMessage `json:"converse"`
			InvokeModel *struct {
				Body []byte `json:"body"` // base64 in JSON, as blobs are
			} `json:"invokeModel"`
		} `json:"input"`
	}
	if err := json.Unmarshal(x.body, &b); err != nil || b.Input == nil {
		x.fail(codeValidation, "1 validation error detected: Value null at 'input' failed to satisfy constraint: Member must not be null")
		return
	}
	if x.tgt.model.Format != FormatAnthropic {
		x.fail(codeValidation, "The provided model doesn't support counting tokens.")
		return
	}
	var system string
	switch {
	case b.Input.Converse != nil && b.Input.InvokeModel != nil:
		x.fail(codeValidation, "input must set exactly one of converse and invokeModel.")
		return
	case b.Input.Converse != nil:
		sys, _, _, ok := x.parseConverse(b.Input.Converse)
		if !ok {
			return
		}
		system = sys
	case b.Input.InvokeModel != nil:
		p, ok := x.parseInvoke(b.Input.InvokeModel.Body)
		if !ok {
			return
		}
		system = p.system
	default:
		x.fail(codeValidation, "input must set exactly one of converse and invokeModel.")
		return
	}
	out := appendIntField(append(x.out[:0], '{'), "inputTokens", int64(reply.InputTokens(system, x.msgs)))
	out = append(out, '}')
	x.out = out
	x.writeJSON(out)
}

// verifyControl applies the Verify hook to a control-plane request.
func (x *exchange) verifyControl() bool {
	if v := x.s.opts.Verify; v != nil {
		if !x.readBody() {
			return false
		}
		if rej := v(x.r, x.body); rej != nil {
			x.fail(rej.Code, rej.Message)
			return false
		}
	}
	return true
}

// serveListModels serves the Bedrock control plane's ListFoundationModels
// (GET /foundation-models), honouring its byProvider, byInferenceType and
// byOutputModality filters.
func (x *exchange) serveListModels() {
	if !x.verifyControl() {
		return
	}
	q := x.r.URL.Query()
	provider, inference, modality := q.Get("byProvider"), q.Get("byInferenceType"), q.Get("byOutputModality")
	b := append(x.out[:0], `{"modelSummaries":[`...)
	first := true
	for i := range x.s.list {
		m := &x.s.list[i]
		switch {
		case provider != "" && !strings.EqualFold(provider, m.Provider):
			continue
		case inference != "" && inference != inferenceType(m):
			continue
		case modality != "" && modality != "TEXT":
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = x.appendModelSummary(b, m)
	}
	b = append(b, "]}"...)
	x.out = b
	x.writeJSON(b)
}

// serveGetModel serves GetFoundationModel (GET /foundation-models/{id}).
func (x *exchange) serveGetModel(escaped string) {
	if !x.verifyControl() {
		return
	}
	id, err := url.PathUnescape(escaped)
	t, ok := x.s.models[id]
	if err != nil || !ok || t.profile != "" {
		x.fail(codeNotFound, "The model "+strconv.Quote(id)+" does not exist.")
		return
	}
	b := append(x.out[:0], `{"modelDetails":`...)
	b = x.appendModelSummary(b, t.model)
	b = append(b, '}')
	x.out = b
	x.writeJSON(b)
}

func inferenceType(m *Model) string {
	if m.ProfileOnly {
		return "INFERENCE_PROFILE"
	}
	return "ON_DEMAND"
}

func (x *exchange) appendModelSummary(b []byte, m *Model) []byte {
	b = appendStringField(append(b, '{'), "modelArn", "arn:aws:bedrock:"+x.region+"::foundation-model/"+m.ID)
	b = appendStringField(b, "modelId", m.ID)
	b = appendStringField(b, "modelName", m.Name)
	b = appendStringField(b, "providerName", m.Provider)
	b = append(b, `,"inputModalities":["TEXT"`...)
	if m.Images {
		b = append(b, `,"IMAGE"`...)
	}
	b = append(b, `],"outputModalities":["TEXT"],"responseStreamingSupported":true,"customizationsSupported":[],"inferenceTypesSupported":["`...)
	b = append(b, inferenceType(m)...)
	b = append(b, `"],"modelLifecycle":{"status":"ACTIVE"}}`...)
	return b
}
