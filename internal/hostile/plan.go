package hostile

import (
	"net/http"
	"strings"
	"sync/atomic"
)

// A Plan answers its requests in turn from a list of Options: the n-th
// request (counting from 0) gets plans[min(n, len(plans)-1)], so the last
// one answers for good. It counts the requests it has seen. A Plan is safe
// for concurrent use; concurrent requests take their turns in the order
// they reach ServeHTTP. Make one with Sequence.
type Plan struct {
	handlers []http.Handler
	n        atomic.Int64
}

// Sequence returns a Plan that answers as plans say, in turn: for example
// Sequence(Options{Mode: Reset}, Options{}) resets the first request and
// answers OK from then on. It panics when plans is empty or one is invalid
// (see Handler).
func Sequence(plans ...Options) *Plan {
	if len(plans) == 0 {
		panic("hostile: Sequence with no plans")
	}
	p := &Plan{}
	for _, o := range plans {
		p.handlers = append(p.handlers, Handler(o))
	}
	return p
}

// ServeHTTP answers the request with its turn's Options.
func (p *Plan) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1) - 1
	p.handlers[min(n, int64(len(p.handlers)-1))].ServeHTTP(w, r)
}

// Requests returns the number of requests the Plan has seen.
func (p *Plan) Requests() int { return int(p.n.Load()) }

// ByRegion returns a handler that sends each request to the handler of its
// region: the region of the credential scope in its SigV4 Authorization
// header, which is how one endpoint (an emulator, or a test's upstream)
// stands for several regions. A request whose region is missing or not in
// m goes to m[""] when there is one, else is answered 421 Misdirected
// Request with the region in a text body. ByRegion copies m.
func ByRegion(m map[string]http.Handler) http.Handler {
	routes := make(map[string]http.Handler, len(m))
	for k, v := range m {
		routes[k] = v
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		region := RegionOf(r)
		h, ok := routes[region]
		if !ok {
			h, ok = routes[""]
		}
		if !ok {
			http.Error(w, "hostile: no upstream for region "+region, http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// RegionOf returns the region r is signed for: the third field of the
// credential scope (AKID/date/region/service/aws4_request) in its SigV4
// Authorization header, or "" when there is none.
//
// It is attempt.RegionFromAuthorization again, on purpose: hostile imports
// nothing of keel's request path, so that the tests of any package,
// attempt's own included, can import it without a cycle.
func RegionOf(r *http.Request) string {
	_, scope, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	scope, _, _ = strings.Cut(scope, ",")
	if f := strings.Split(strings.TrimSpace(scope), "/"); len(f) == 5 {
		return f[2]
	}
	return ""
}
