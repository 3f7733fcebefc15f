package classify

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keel-run/keel/internal/catalog"
)

// maxBodyMessage bounds the message taken from a body that is not JSON (a
// proxy's HTML error page, say).
const maxBodyMessage = 256

// FromHTTP classifies a non-2xx HTTP response from its status, headers and
// body, the way the SDK's restJson1 protocol reads an error: the code from
// the X-Amzn-ErrorType header (its ":..." suffix and any "namespace#"
// prefix dropped), else from the JSON body's __type, else its code; the
// message from the body's message or Message. A code the catalog lacks, or
// none, falls back on the status class (catalog.ForStatus). Any 3xx is an
// UnexpectedRedirect, whatever it says: keel never follows one. The Result
// always has an Entry. Retry-After dates are measured from time.Now; use
// FromHTTPAt to fix the time.
func FromHTTP(status int, h http.Header, body []byte) Result {
	return FromHTTPAt(time.Now(), status, h, body)
}

// FromHTTPAt is FromHTTP with an explicit current time for Retry-After
// dates.
func FromHTTPAt(now time.Time, status int, h http.Header, body []byte) Result {
	r := Result{
		Status:     status,
		RequestID:  requestID(h),
		RetryAfter: retryAfter(h, now),
	}
	if isRedirect(status) {
		// Whatever code or message the redirecting server sends, it is not
		// Bedrock's: a redirect must not pass for a throttle and be retried.
		r.Entry = catalog.Must(catalog.CodeUnexpectedRedirect)
		r.Message = redirectMessage(status, h.Get("Location"))
		return r
	}
	info := parseBody(body)
	r.Code = strings.TrimSpace(h.Get("X-Amzn-Errortype"))
	if r.Code == "" {
		r.Code = info.code
	}
	r.Message = info.message
	if e, ok := catalog.Lookup(r.Code); ok {
		r.Entry = catalog.Refine(e, r.Message)
	} else {
		r.Entry = forStatus(status)
	}
	if r.Status <= 0 || r.Status > 599 {
		r.Status = r.Entry.Status
	}
	return r
}

// bodyInfo is what an AWS JSON error body says.
type bodyInfo struct {
	code, message string
}

// parseBody reads an AWS JSON error body: {"__type": ..., "message": ...},
// {"code": ...}, or the JSON 1.0 form that nests them under "Output". A body
// that is not JSON yields its first bytes as the message.
func parseBody(body []byte) bodyInfo {
	var raw struct {
		Type    json.RawMessage `json:"__type"`
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"` // encoding/json matches "Message" too
		Output  *struct {
			Type    json.RawMessage `json:"__type"`
			Code    json.RawMessage `json:"code"`
			Message json.RawMessage `json:"message"`
		} `json:"Output"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return bodyInfo{}
	}
	if trimmed[0] != '{' || json.Unmarshal(trimmed, &raw) != nil && raw.Type == nil && raw.Code == nil && raw.Message == nil {
		if len(trimmed) > maxBodyMessage+utf8.UTFMax {
			trimmed = trimmed[:maxBodyMessage+utf8.UTFMax]
		}
		return bodyInfo{message: snippet(string(trimmed))}
	}
	info := bodyInfo{code: jsonString(raw.Type), message: jsonString(raw.Message)}
	if info.code == "" {
		info.code = jsonString(raw.Code)
	}
	if o := raw.Output; o != nil {
		if info.code == "" {
			info.code = jsonString(o.Type)
		}
		if info.code == "" {
			info.code = jsonString(o.Code)
		}
		if info.message == "" {
			info.message = jsonString(o.Message)
		}
	}
	return info
}

// jsonString returns the string a raw JSON value holds, or "" if it is not
// a string.
func jsonString(v json.RawMessage) string {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// snippet returns at most maxBodyMessage bytes of s, cut on a rune boundary.
func snippet(s string) string {
	if len(s) <= maxBodyMessage {
		return strings.ToValidUTF8(s, "")
	}
	cut := maxBodyMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strings.ToValidUTF8(s[:cut], "") + "…"
}

// retryAfter reads the server's retry hint: x-amz-retry-after in
// milliseconds, else Retry-After in seconds or as an HTTP date (relative to
// now). Absent, negative, past or unparseable values give zero; large ones
// are clamped to MaxRetryAfter.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("X-Amz-Retry-After")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			return clampSeconds(ms / 1000)
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		return clampSeconds(s)
	}
	if t, err := http.ParseTime(v); err == nil {
		return clampSeconds(t.Sub(now).Seconds())
	}
	return 0
}

func clampSeconds(s float64) time.Duration {
	switch {
	case math.IsNaN(s) || s <= 0:
		return 0
	case s >= MaxRetryAfter.Seconds():
		return MaxRetryAfter
	}
	return time.Duration(s * float64(time.Second))
}

// isRedirect reports a 3xx status.
func isRedirect(status int) bool { return status >= 300 && status < 400 }

// forStatus is catalog.ForStatus, except that a 3xx is an
// UnexpectedRedirect: the HTTP clients keel sends with stop at a redirect
// and hand it back (transport.NoRedirect).
func forStatus(status int) *catalog.Entry {
	if isRedirect(status) {
		return catalog.Must(catalog.CodeUnexpectedRedirect)
	}
	return catalog.ForStatus(status)
}

// redirectMessage says what was not followed. It carries the entry's hint,
// so `keel explain` finds the entry from the message alone.
func redirectMessage(status int, location string) string {
	msg := "redirect not followed: HTTP " + strconv.Itoa(status)
	if location = strings.TrimSpace(location); location != "" {
		msg += " to " + snippet(location)
	}
	return msg
}
