package doctor

import (
	"context"
	"errors"
	"fmt"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/quotas"
)

// farBelow is the share of the real quota under which a configured quota
// draws a warning: keel would hold calls back that Bedrock would serve.
const farBelow = 0.5

// quotaChecks reads the models' quotas from Service Quotas (one listing
// for all of them) and sets each beside what keel's configuration says.
func (r *run) quotaChecks(ctx context.Context) []Result {
	if len(r.Models) == 0 {
		return []Result{{Group: GroupQuotas, Check: "tokens-per-minute", Status: NotRun, Seen: "no model to check"}}
	}
	var out []Result
	if !r.speaksAWS() {
		for _, id := range r.Models {
			out = append(out, Result{Group: GroupQuotas, Check: "tokens-per-minute", Subject: id, Status: NotRun, Seen: r.notAWS("Service Quotas")})
		}
		return out
	}
	if r.credsErr != nil {
		for _, id := range r.Models {
			out = append(out, Result{Group: GroupQuotas, Check: "tokens-per-minute", Subject: id, Status: NotRun, Seen: "no credentials to read Service Quotas with"})
		}
		return out
	}
	qs, err := quotas.List(ctx, r.Quotas)
	for _, id := range r.Models {
		res := Result{Group: GroupQuotas, Check: "tokens-per-minute", Subject: id}
		if err != nil {
			out = append(out, quotaListFailed(res, err))
			continue
		}
		out = append(out, judgeQuota(res, quotas.For(qs, id), configured(r.Config, id, r.region), r.region))
	}
	return out
}

// quotaListFailed is a model's quota check when Service Quotas could not
// be read: a warning, since keel then learns the quota from throttles.
func quotaListFailed(res Result, err error) Result {
	res.Status = Warn
	c := classify.FromError(err)
	if c.Entry != nil {
		res.Code = c.Entry.Code
	}
	res.Seen = "Service Quotas could not be read, so keel's governor has to learn the quota from throttles: " + abbreviate(err.Error(), 160)
	res.Fix = "allow servicequotas:ListServiceQuotas to this identity, or set quotas.targets in keel's configuration"
	if errors.Is(err, context.DeadlineExceeded) {
		res.Fix = "check the network path to Service Quotas (servicequotas.REGION.amazonaws.com)"
	}
	return res
}

// configured returns keel's configured quota for the target id@region: a
// quotas.targets entry (whose empty region is the configuration's region,
// any region when that is empty too), else quotas.default.
func configured(c *config.Config, id, region string) config.Quota {
	for _, q := range c.Quotas.Targets {
		r := q.Region
		if r == "" {
			r = c.Region
		}
		if q.Model == id && (r == "" || r == region) {
			return q
		}
	}
	return c.Quotas.Default
}

// judgeQuota sets the listed quotas of a target beside keel's
// configuration: a zero quota fails (every call is throttled), a
// configured quota above the real one or far below it warns.
func judgeQuota(res Result, l quotas.Limits, conf config.Quota, region string) Result {
	kind := quotas.KindOf(res.Subject)
	if l.TokensPerMinute.Kind == quotas.None {
		res.Status = Pass
		res.Seen = fmt.Sprintf("Service Quotas lists no %s tokens-per-minute quota for %s in %s; %s", kind, res.Subject, region, keelSays(conf))
		return res
	}
	tpm := l.TokensPerMinute.Int()
	seen := fmt.Sprintf("%d tokens per minute (%q, %s)", tpm, l.TokensPerMinute.Name, l.TokensPerMinute.Code)
	if l.TokensPerDay.Kind != quotas.None {
		seen += fmt.Sprintf(", %d tokens per day", l.TokensPerDay.Int())
	}
	seen += "; " + keelSays(conf)
	switch set := int64(conf.TokensPerMinute); {
	case tpm == 0:
		res = catalogResult(res, Fail, catalog.CodeThrottling, seen+": the quota is zero, every call is throttled")
		res.Fix = "request a quota increase in the Service Quotas console (" + l.TokensPerMinute.Code + "), or call the model another way (a cross-region profile)"
	case set > tpm && !conf.Learning():
		res.Status, res.Seen = Warn, seen+": keel admits more than Bedrock allows, and Bedrock throttles the rest"
		res.Fix = fmt.Sprintf("set tokens_per_minute: %d for this target in keel's quotas", tpm)
	case set > 0 && float64(set) < farBelow*float64(tpm) && !conf.Learning():
		res.Status, res.Seen = Warn, seen+": keel holds calls back that Bedrock would serve"
		res.Fix = fmt.Sprintf("set tokens_per_minute: %d for this target in keel's quotas, unless the rest is meant for another process", tpm)
	default:
		res.Status, res.Seen = Pass, seen
	}
	return res
}

// keelSays words keel's configured quota.
func keelSays(q config.Quota) string {
	switch {
	case q.TokensPerMinute == 0:
		return "keel's configuration sets none: its governor learns it from throttles"
	case q.Learning():
		return fmt.Sprintf("keel starts from %d and learns", q.TokensPerMinute)
	}
	return fmt.Sprintf("keel's configuration says %d", q.TokensPerMinute)
}
