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

// tiered is the request of one service tier: the call's own, or a copy
// asking for another tier.
type tiered struct {
	body   []byte
	sum    string
	header http.Header
}

// useTier points p.req at the request for the current target's tier: the
// call's own when the target keeps the tier the request names, else a copy
// (made once per tier) naming the target's tier in the header (InvokeModel)
// or the body (Converse). A Converse body that is not JSON is sent as it
// is, for Bedrock to refuse.
func (p *pass) useTier() {
	want := cmp.Or(p.t.Tier, bedrock.TierDefault)
	if p.tiers == nil {
		p.tiers = map[string]tiered{cmp.Or(p.ownTier, bedrock.TierDefault): {p.req.Body, p.req.BodySHA256, p.req.Header}}
	}
	r, ok := p.tiers[want]
	if !ok {
		r = p.tiers[cmp.Or(p.ownTier, bedrock.TierDefault)]
		switch p.call.Op {
		case attempt.Invoke, attempt.InvokeWithResponseStream:
			r.header = r.header.Clone()
			if r.header == nil {
				r.header = http.Header{}
			}
			r.header.Set(TierHeader, want)
		case attempt.Converse, attempt.ConverseStream:
			if b, err := withTier(r.body, want); err == nil {
				r.body = b
				if r.sum != "" {
					r.sum = attempt.PayloadHash(b)
				}
			}
		}
		p.tiers[want] = r
	}
	p.req.Body, p.req.BodySHA256, p.req.Header = r.body, r.sum, r.header
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
