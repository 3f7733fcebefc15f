package classify

import (
	"sort"
	"strings"

	"github.com/keel-run/keel/internal/catalog"

	"github.com/keel-run/keel/internal/textdist"
)

const (
	// maxText bounds how much pasted text is examined.
	maxText = 64 << 10
	// maxMessage bounds the message FromText extracts.
	maxMessage = 512
	// minToken is the shortest word taken for a code.
	minToken = 4
)

// hintList is every catalog hint with its entry, longest first, so the
// most specific fragment wins ("unexpected eof" before ": eof"). The hints
// of entries that refine another code are in it too: a message pasted
// without its code ("This model does not support assistant message
// prefill") still names its failure.
var hintList = func() []hint {
	var hs []hint
	for _, e := range catalog.All() {
		for _, h := range e.Hints {
			hs = append(hs, hint{h, e})
		}
	}
	sort.SliceStable(hs, func(i, j int) bool { return len(hs[i].text) > len(hs[j].text) })
	return hs
}()

type hint struct {
	text  string
	entry *catalog.Entry
}

// matchHints returns the entry whose hint text contains, or nil.
func matchHints(text string) *catalog.Entry {
	for _, h := range hintList {
		if catalog.ContainsFold(text, h.text) {
			return h.entry
		}
	}
	return nil
}

// FromText finds the error in text a person pasted: a whole SDK error
// string ("operation error Bedrock Runtime: Converse, https response error
// StatusCode: 429, RequestID: 1b2c..., ThrottlingException: Too many
// tokens..."), a boto3 or JavaScript SDK message, a JSON error body, a Go
// network error ("dial tcp ...: connection refused"), or a bare code in any
// case. The first word that names a catalog code wins; failing that, the
// catalog's hint fragments; failing that, a status code in the text
// ("StatusCode: 503") falls back on its status class. Status, RequestID
// and Message are filled in when the text shows them. ok is false when
// nothing in the text identifies an error; Suggest then offers the closest
// codes.
func FromText(text string) (r Result, ok bool) {
	if len(text) > maxText {
		text = text[:maxText]
	}
	trimmed := strings.TrimSpace(text)
	if trimmed == "" {
		return Result{}, false
	}
	r.Status = statusIn(text)
	r.RequestID = requestIDIn(text)

	if trimmed[0] == '{' {
		if info := parseBody([]byte(trimmed)); info.code != "" {
			if e, found := catalog.Lookup(info.code); found {
				r.Entry, r.Code, r.Message = catalog.Refine(e, info.message), info.code, info.message
			}
		}
	}
	if r.Entry == nil {
		for start, end := nextWord(text, 0); start < len(text); start, end = nextWord(text, end) {
			w := text[start:end]
			if len(w) < minToken {
				continue
			}
			if e, found := catalog.Lookup(w); found {
				r.Code = w
				r.Message = messageAfter(text, end)
				r.Entry = catalog.Refine(e, text)
				break
			}
		}
	}
	if r.Entry == nil {
		r.Entry = matchHints(text)
		if r.Entry != nil {
			r.Message = firstLine(trimmed)
		}
	}
	if r.Entry == nil && r.Status != 0 {
		r.Entry = forStatus(r.Status)
		r.Message = firstLine(trimmed)
	}
	if r.Entry == nil {
		return Result{}, false
	}
	if r.Status == 0 {
		r.Status = r.Entry.Status
	}
	return r, true
}

// isWordByte reports whether c can be part of a code-like word.
func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// nextWord returns the bounds of the next word at or after i; start is
// len(s) when there is none.
func nextWord(s string, i int) (start, end int) {
	for i < len(s) && !isWordByte(s[i]) {
		i++
	}
	start = i
	for i < len(s) && isWordByte(s[i]) {
		i++
	}
	return start, i
}

// messageAfter extracts the message that follows a code at text[end:]:
// "Code: message" (Go and JavaScript SDKs) or boto3's "(Code) when calling
// the X operation: message".
func messageAfter(text string, end int) string {
	rest := text[end:]
	// Skip an X-Amzn-ErrorType style suffix glued to the code.
	if strings.HasPrefix(rest, ":http") {
		if i := strings.IndexAny(rest, " \t\r\n"); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	t := strings.TrimLeft(rest, " \t\"')")
	if strings.HasPrefix(t, ":") {
		msg := firstLine(strings.TrimLeft(t[1:], " \t\""))
		if !strings.HasPrefix(msg, "An error occurred (") {
			return msg
		}
		// botocore.errorfactory.X: An error occurred (X) when calling ...
		rest = msg
	}
	line := firstLine(rest)
	for _, sep := range []string{"): ", "operation: "} {
		if i := strings.Index(line, sep); i >= 0 {
			return firstLine(line[i+len(sep):])
		}
	}
	return ""
}

// firstLine returns s up to its first line break, trimmed and bounded.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if len(s) > maxMessage {
		s = snippet(s[:maxMessage])
	}
	return strings.TrimRight(s, "\"}")
}

// statusPrefixes introduce an HTTP status in SDK error texts.
var statusPrefixes = []string{"statuscode", "status code", "httpstatuscode", "error code", "http status"}

// statusIn finds an HTTP status (100-599) in text after one of
// statusPrefixes, or returns 0.
func statusIn(text string) int {
	low := strings.ToLower(text)
	for _, p := range statusPrefixes {
		for off := 0; off < len(low); {
			i := strings.Index(low[off:], p)
			if i < 0 {
				break
			}
			j := off + i + len(p)
			for j < len(low) && strings.IndexByte(" \t:=\"'", low[j]) >= 0 {
				j++
			}
			n, k := 0, j
			for k < len(low) && k-j < 4 && '0' <= low[k] && low[k] <= '9' {
				n = n*10 + int(low[k]-'0')
				k++
			}
			if k-j == 3 && n >= 100 && n <= 599 {
				return n
			}
			off = j
		}
	}
	return 0
}

// requestIDPrefixes introduce an AWS request id in SDK error texts.
var requestIDPrefixes = []string{"requestid", "request id", "x-amzn-requestid"}

// requestIDIn finds a request id in text, or returns "".
func requestIDIn(text string) string {
	low := strings.ToLower(text)
	for _, p := range requestIDPrefixes {
		i := strings.Index(low, p)
		if i < 0 {
			continue
		}
		j := i + len(p)
		for j < len(text) && strings.IndexByte(" \t:=\"'", text[j]) >= 0 {
			j++
		}
		k := j
		for k < len(text) && k-j < 128 && (isWordByte(text[k]) || text[k] == '-') {
			k++
		}
		if k > j {
			return text[j:k]
		}
	}
	return ""
}

// Suggest returns up to n catalog entries whose codes or aliases are
// closest to the words of text, best first, for a "did you mean" when
// FromText finds nothing. Closeness is edit distance, a shared prefix, or
// one word containing the other; entries that are not close at all are
// left out, so the result may be shorter than n or empty.
func Suggest(text string, n int) []*catalog.Entry {
	if n <= 0 {
		return nil
	}
	if len(text) > maxText {
		text = text[:maxText]
	}
	var words []string
	for start, end := nextWord(text, 0); start < len(text) && len(words) < 16; start, end = nextWord(text, end) {
		if w := text[start:end]; len(w) >= 3 && len(w) <= maxWord {
			words = append(words, strings.ToLower(w))
		}
	}
	if len(words) == 0 {
		return nil
	}
	type scored struct {
		e     *catalog.Entry
		score float64
		rank  int
	}
	var out []scored
	for i, e := range catalog.All() {
		best := 0.0
		for _, k := range suggestKeys[i] {
			for _, w := range words {
				if s := similarity(w, k); s > best {
					best = s
				}
			}
		}
		if best >= 0.6 {
			out = append(out, scored{e, best, i})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].score != out[j].score {
			return out[i].score > out[j].score
		}
		return out[i].rank < out[j].rank
	})
	if len(out) > n {
		out = out[:n]
	}
	res := make([]*catalog.Entry, len(out))
	for i, s := range out {
		res[i] = s.e
	}
	return res
}

// suggestKeys holds, per entry of catalog.All, the lower-case names it
// answers to, with and without an "exception" suffix.
var suggestKeys = func() [][]string {
	all := catalog.All()
	keys := make([][]string, len(all))
	for i, e := range all {
		for _, k := range append([]string{e.Code}, e.Aliases...) {
			k = strings.ToLower(k)
			keys[i] = append(keys[i], k)
			if s, ok := strings.CutSuffix(k, "exception"); ok && s != "" {
				keys[i] = append(keys[i], s)
			}
		}
	}
	return keys
}()

// similarity scores how close word w is to key k, from 0 to 1.
func similarity(w, k string) float64 {
	longer := max(len(w), len(k))
	best := 1 - float64(textdist.Levenshtein(w, k))/float64(longer)
	if len(w) >= minToken && strings.Contains(k, w) {
		best = max(best, 0.6+0.4*float64(len(w))/float64(len(k)))
	}
	if len(k) >= minToken && strings.Contains(w, k) {
		best = max(best, 0.6+0.4*float64(len(k))/float64(len(w)))
	}
	if cp := commonPrefix(w, k); cp > minToken && 4*cp >= 3*len(w) {
		best = max(best, 0.5+0.4*float64(cp)/float64(len(w)))
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// maxWord bounds the words Suggest compares; catalog keys are shorter.
const maxWord = 64
