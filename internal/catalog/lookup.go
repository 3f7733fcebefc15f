package catalog

import (
	"fmt"
	"strings"
)

// maxKey bounds the length of a normalised code. No code in the table is
// near it; longer input cannot match and is rejected without work.
const maxKey = 64

var (
	// exact maps every code, alias and stream name, spelled exactly as in
	// the table, so the common case (a canonical code) costs one map probe.
	exact = map[string]*Entry{}
	// folded maps the lower-case form of the same keys.
	folded = map[string]*Entry{}
	// refinements lists, per refined entry, the entries that refine it.
	refinements = map[*Entry][]*Entry{}
)

func init() {
	add := func(key string, e *Entry) {
		if key == "" {
			return
		}
		low := strings.ToLower(key)
		if prev, dup := folded[low]; dup && prev != e {
			panic(fmt.Sprintf("catalog: key %q names both %s and %s", key, prev.Code, e.Code))
		}
		if len(low) > maxKey {
			panic(fmt.Sprintf("catalog: key %q is longer than %d bytes", key, maxKey))
		}
		exact[key] = e
		folded[low] = e
	}
	for _, e := range table {
		e.wire = wireCode(e)
		e.stream = lowerFirst(e.wire)
		add(e.Code, e)
		for _, a := range e.Aliases {
			add(a, e)
		}
		if e.stream != "" && e.Refines == "" {
			add(e.stream, e)
		}
	}
	for _, e := range table {
		if e.Refines == "" {
			continue
		}
		base, ok := exact[e.Refines]
		if !ok {
			panic(fmt.Sprintf("catalog: %s refines unknown code %q", e.Code, e.Refines))
		}
		refinements[base] = append(refinements[base], e)
	}
	unknownNetwork = Must(CodeUnknownNetworkError)
	tooManyRequests = Must(CodeTooManyRequests)
	unknownServer = Must(CodeUnknownServerError)
	unknownClient = Must(CodeUnknownClientError)
}

// wireCode computes Entry.WireCode for an entry.
func wireCode(e *Entry) string {
	if e.Refines != "" {
		return e.Refines
	}
	switch e.Source {
	case "bedrock-runtime", "aws-auth":
		return e.Code
	case "guide":
		if e.Status != 0 {
			return e.Code
		}
	}
	return ""
}

// lowerFirst returns s with its first byte lower-cased (codes are ASCII).
func lowerFirst(s string) string {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return s
	}
	return string(s[0]+('a'-'A')) + s[1:]
}

// Lookup returns the entry for code. The match is case-insensitive and goes
// through Aliases, so the event-stream spelling ("throttlingException") and
// the guide's names resolve too. Lookup also accepts the decorations codes
// carry on the wire: an X-Amzn-ErrorType suffix after ':'
// ("ThrottlingException:http://internal.amazon.com/coral/..."), a namespace
// prefix before '#' ("com.amazonaws.bedrock#ThrottlingException"), and a
// missing or extra "Exception" suffix ("ModelNotReady"). It does not
// allocate.
func Lookup(code string) (*Entry, bool) {
	if e, ok := exact[code]; ok {
		return e, true
	}
	code = trimCode(code)
	if code == "" || len(code) > maxKey {
		return nil, false
	}
	var buf [maxKey + len("exception")]byte
	n := 0
	for i := 0; i < len(code); i++ {
		c := code[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[n] = c
		n++
	}
	if e, ok := folded[string(buf[:n])]; ok {
		return e, true
	}
	const suffix = "exception"
	if n > len(suffix) && string(buf[n-len(suffix):n]) == suffix {
		e, ok := folded[string(buf[:n-len(suffix)])]
		return e, ok
	}
	n += copy(buf[n:], suffix)
	e, ok := folded[string(buf[:n])]
	return e, ok
}

// trimCode strips the wire decorations Lookup tolerates.
func trimCode(code string) string {
	code = strings.TrimSpace(code)
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return strings.TrimSpace(code)
}

// Must returns the entry for code, like Lookup. It panics if there is none,
// which can only be a programming error: use it with the Code constants.
func Must(code string) *Entry {
	e, ok := Lookup(code)
	if !ok {
		panic(fmt.Sprintf("catalog: Must(%q): no such entry", code))
	}
	return e
}

// All returns every entry, in a stable order: bedrock-runtime exceptions,
// authentication errors, the troubleshooting guide's codes, transport,
// stream and client failures, SDK errors, content filters, fallbacks. The
// slice is a copy; the entries are shared and must not be modified.
func All() []*Entry {
	return append([]*Entry(nil), table...)
}

// Refine returns the entry that message identifies more precisely than e,
// or e itself. Some failures have no code of their own on the wire: the
// Anthropic use-case form error arrives as a ResourceNotFoundException, and
// AWS Marketplace agreement errors as an AccessDeniedException; their
// entries name the code in Refines and list message fragments in Hints.
// The match is case-insensitive.
func Refine(e *Entry, message string) *Entry {
	subs := refinements[e]
	if len(subs) == 0 || message == "" {
		return e
	}
	for _, s := range subs {
		for _, h := range s.Hints {
			if containsFold(message, h) {
				return s
			}
		}
	}
	return e
}

// containsFold reports whether s contains the lower-case ASCII string sub,
// ignoring ASCII case in s, without allocating.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// ContainsFold reports whether s contains sub, ignoring ASCII case. sub must
// be lower-case, as Entry.Hints are.
func ContainsFold(s, sub string) bool { return containsFold(s, sub) }

// ForStatus returns the entry for a failure known only by its HTTP status,
// when the response carries no code or one the catalog lacks:
//
//	0 or invalid   UnknownNetworkError (no response: back off, unhealthy)
//	429            TooManyRequests     (slow down, like throttling)
//	408, 5xx       UnknownServerError  (back off, unhealthy)
//	other 4xx      UnknownClientError  (never retry)
//	1xx, 2xx, 3xx  UnknownClientError  (not a usable answer; retrying will not change it)
func ForStatus(status int) *Entry {
	switch {
	case status <= 0 || status > 599:
		return unknownNetwork
	case status == 429:
		return tooManyRequests
	case status == 408 || status >= 500:
		return unknownServer
	default:
		return unknownClient
	}
}

// The fallbacks, set by init once the maps are built.
var unknownNetwork, tooManyRequests, unknownServer, unknownClient *Entry
