package doctor

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/keel-run/keel/internal/catalog"
)

const (
	// MaxSkew is how far a request's signing time may be from AWS's clock
	// before the request is refused (Signature expired / RequestExpired):
	// 5 minutes either way.
	MaxSkew = 5 * time.Minute
	// WarnSkew is the skew that draws a warning: a clock a minute off is
	// drifting (NTP is off or failing), and the margin to MaxSkew shrinks
	// with every day it is left alone.
	WarnSkew = time.Minute
	// dateResolution is the precision of an HTTP Date header, which the
	// measured skew may be off by.
	dateResolution = time.Second
)

// clock measures the skew between this machine's clock and the endpoint's
// Date header, taken at the middle of the exchange.
func (r *run) clock(ctx context.Context) []Result {
	res := Result{Group: GroupClock, Check: "skew"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint.String()+"/", nil)
	if err != nil {
		res.Status, res.Seen = NotRun, "cannot build a request to "+r.endpoint.String()+": "+err.Error()
		return []Result{res}
	}
	sent := r.Now()
	resp, err := r.HTTP.Do(req)
	if err != nil {
		res.Status, res.Seen = NotRun, "the endpoint did not answer, so its clock is unknown: "+err.Error()
		return []Result{res}
	}
	got := r.Now()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		res.Status, res.Seen = NotRun, fmt.Sprintf("the endpoint sent no usable Date header (%q)", resp.Header.Get("Date"))
		return []Result{res}
	}
	return []Result{judgeSkew(res, skewOf(date, sent, got))}
}

// skewOf is how far the server's clock (date) is ahead of ours, judged at
// the middle of the exchange; the Date header's truncation to the second
// is split evenly.
func skewOf(date, sent, got time.Time) time.Duration {
	mid := sent.Add(got.Sub(sent) / 2)
	return date.Add(dateResolution / 2).Sub(mid)
}

// judgeSkew grades a measured skew (the server ahead of this machine when
// positive).
func judgeSkew(res Result, skew time.Duration) Result {
	abs := skew
	if abs < 0 {
		abs = -abs
	}
	dir := "ahead of"
	if skew < 0 {
		dir = "behind"
	}
	seen := fmt.Sprintf("the endpoint's clock is %s %s this machine's", abs.Round(time.Second), dir)
	if abs < dateResolution {
		seen = "the endpoint's clock agrees with this machine's, within the Date header's second"
	}
	switch {
	case abs > MaxSkew:
		res = catalogResult(res, Fail, catalog.CodeRequestExpired, fmt.Sprintf("%s: past AWS's %v window, every signed request is refused", seen, MaxSkew))
	case abs > WarnSkew:
		res.Status, res.Seen = Warn, fmt.Sprintf("%s: within AWS's %v window, but drifting", seen, MaxSkew)
		res.Fix = "synchronise the clock with a time source (chrony, systemd-timesyncd, the Amazon Time Sync Service)"
	default:
		res.Status, res.Seen = Pass, seen
	}
	return res
}
