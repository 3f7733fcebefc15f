package emulator

import (
	"encoding/json"
	"fmt"
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

// profileAccount is the account in inference profile ARNs: AWS's
// documentation example account, as the emulator has no accounts.
const profileAccount = "123456789012"

// maxProfilePage is the largest page ListInferenceProfiles returns, as
// Bedrock caps maxResults.
const maxProfilePage = 1000

// profilesIn lists the system-defined inference profiles callable from
// region, in model-table order: each model's global profile and the one of
// the region's geography.
func (x *exchange) profilesIn(region string) []target {
	var out []target
	for i := range x.s.list {
		m := &x.s.list[i]
		for _, geo := range m.Profiles {
			if profileCallable(geo, region) {
				out = append(out, target{model: m, profile: geo})
			}
		}
	}
	return out
}

// serveListProfiles serves ListInferenceProfiles (GET /inference-profiles):
// the system-defined cross-region profiles of the region, paged by
// maxResults and nextToken; typeEquals APPLICATION lists none, as the
// emulator has no application profiles.
func (x *exchange) serveListProfiles() {
	if !x.verifyControl() {
		return
	}
	q := x.r.URL.Query()
	size, start, ok := x.page(q, maxProfilePage)
	if !ok {
		return
	}
	var all []target
	switch t := q.Get("type"); t {
	case "", "SYSTEM_DEFINED":
		all = x.profilesIn(x.region)
	case "APPLICATION":
	default:
		x.fail(codeValidation, "1 validation error detected: Value '"+t+"' at 'typeEquals' failed to satisfy constraint: "+
			"Member must satisfy enum value set: [SYSTEM_DEFINED, APPLICATION]")
		return
	}
	start = min(start, len(all))
	end := min(start+size, len(all))
	b := append(x.out[:0], `{"inferenceProfileSummaries":[`...)
	for i, t := range all[start:end] {
		if i > 0 {
			b = append(b, ',')
		}
		b = x.appendProfile(b, t)
	}
	b = append(b, ']')
	if end < len(all) {
		b = appendStringField(b, "nextToken", strconv.Itoa(end))
	}
	b = append(b, '}')
	x.out = b
	x.writeJSON(b)
}

// serveGetProfile serves GetInferenceProfile (GET /inference-profiles/{id}),
// id being a profile id or its ARN.
func (x *exchange) serveGetProfile(escaped string) {
	if !x.verifyControl() {
		return
	}
	id, err := url.PathUnescape(escaped)
	t, ok := x.s.lookup(id)
	if err != nil || !ok || t.profile == "" || !profileCallable(t.profile, x.region) {
		x.fail(codeNotFound, "Inference profile "+id+" does not exist.")
		return
	}
	x.out = x.appendProfile(x.out[:0], t)
	x.writeJSON(x.out)
}

// appendProfile appends an InferenceProfileSummary (the shape
// GetInferenceProfile's response shares).
func (x *exchange) appendProfile(b []byte, t target) []byte {
	id := t.profile + "." + t.model.ID
	geo := strings.ToUpper(t.profile)
	if t.profile == GeoGlobal {
		geo = "Global"
	}
	b = appendStringField(append(b, '{'), "inferenceProfileName", geo+" "+t.model.Name)
	b = appendStringField(b, "description", "Routes requests to "+t.model.Name+" in regions of "+geo+".")
	b = appendStringField(b, "inferenceProfileArn", "arn:aws:bedrock:"+x.region+":"+profileAccount+":inference-profile/"+id)
	b = append(b, `,"models":[{"modelArn":`...)
	b = appendJSONString(b, "arn:aws:bedrock:"+x.region+"::foundation-model/"+t.model.ID)
	b = append(b, `}]`...)
	b = appendStringField(b, "inferenceProfileId", id)
	b = append(b, `,"status":"ACTIVE","type":"SYSTEM_DEFINED"}`...)
	return b
}

// page reads a list operation's maxResults (1 to max; absent: max) and
// nextToken (an offset) from q. A bad one fails the exchange with
// Bedrock's ValidationException, and ok is false.
func (x *exchange) page(q url.Values, max int) (size, start int, ok bool) {
	size = max
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			x.fail(codeValidation, validationMessage(v, "maxResults", fmt.Sprintf("Member must have value between 1 and %d", max)))
			return 0, 0, false
		}
		size = n
	}
	if v := q.Get("nextToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			x.fail(codeValidation, "The provided pagination token is invalid.")
			return 0, 0, false
		}
		start = n
	}
	return size, start, true
}
