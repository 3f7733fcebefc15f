package engine

import (
	"bytes"
	"cmp"
	"encoding/json"
	"net/http"

	"github.com/keel-run/keel/internal/attempt"
	"github.com/keel-run/keel/internal/bedrock"
)

// TierHeader is the InvokeModel header naming a service tier; Converse
// names it in the body, as serviceTier.type.
const TierHeader = "X-Amzn-Bedrock-Service-Tier"

// RequestTier returns the service tier a request of op names: the
// X-Amzn-Bedrock-Service-Tier header of InvokeModel, serviceTier.type in a
// Converse body; "" when it names none (or the body is not JSON: Bedrock
// will say what is wrong with it).
func RequestTier(op attempt.Op, header http.Header, body []byte) string {
	switch op {
	case attempt.Invoke, attempt.InvokeWithResponseStream:
		return header.Get(TierHeader)
	case attempt.Converse, attempt.ConverseStream:
		if !bytes.Contains(body, []byte(`"serviceTier"`)) {
			return "" // most calls name none: no second decode
		}
		var b struct {
			ServiceTier *struct {
				Type string `json:"type"`
			} `json:"serviceTier"`
		}
		if json.Unmarshal(body, &b) != nil || b.ServiceTier == nil {
			return ""
		}
		return b.ServiceTier.Type
	}
	return ""
}

// useTier makes p.req ask for the current target's tier: the call's own
// header, or a copy naming the target's tier (InvokeModel), and the body
// the adapt stage left, or a copy naming the tier (Converse). It runs after
// adapt, on the body fitted to the target's model. A Converse body that is
// not JSON is sent as it is, for Bedrock to refuse.
func (p *pass) useTier() {
	want := cmp.Or(p.t.Tier, bedrock.TierDefault)
	p.req.Header = p.call.Header
	if want == cmp.Or(p.ownTier, bedrock.TierDefault) {
		return
	}
	switch p.call.Op {
	case attempt.Invoke, attempt.InvokeWithResponseStream:
		h := p.call.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set(TierHeader, want)
		p.req.Header = h
	case attempt.Converse, attempt.ConverseStream:
		if b, err := withTier(p.req.Body, want); err == nil {
			p.req.Body = b
			if p.req.BodySHA256 != "" {
				p.req.BodySHA256 = attempt.PayloadHash(b)
			}
		}
	}
}

// withTier returns a copy of a Converse body whose serviceTier names tier.
// The other members keep their values (their order may change).
func withTier(body []byte, tier string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	st, err := json.Marshal(map[string]string{"type": tier})
	if err != nil {
		return nil, err
	}
	m["serviceTier"] = st
	return json.Marshal(m)
}
