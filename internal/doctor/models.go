package doctor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	bedrocktypes "github.com/aws/aws-sdk-go-v2/service/bedrock/types"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	rttypes "github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	models "github.com/keel-run/keel/internal/bedrock"
	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// modelChecks checks each model: its profile prefix against the region, that
// Bedrock knows it there, its lifecycle, and (with Probe) access to it.
// Models are checked at once, each within the check's time bound.
func (r *run) modelChecks(ctx context.Context) []Result {
	if len(r.Models) == 0 {
		why := "no model to check: name one with --model, or routes in --config"
		return []Result{
			{Group: GroupModel, Check: "exists", Status: NotRun, Seen: why},
			{Group: GroupAccess, Check: "probe", Status: NotRun, Seen: why},
		}
	}
	var mu sync.Mutex
	var out []Result
	var wg sync.WaitGroup
	for _, id := range r.Models {
		wg.Go(func() {
			rs := r.model(ctx, id)
			mu.Lock()
			out = append(out, rs...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// model checks one model id.
func (r *run) model(ctx context.Context, id string) []Result {
	fit := Result{Group: GroupModel, Check: "region", Subject: id}
	fit.Status, fit.Seen, fit.Fix = profileFits(id, r.region)
	if fit.Status == Fail {
		fit.Code = catalog.CodeInvalidModelIdentifier
	}
	out := []Result{fit}
	exists := Result{Group: GroupModel, Check: "exists", Subject: id}
	life := Result{Group: GroupModel, Check: "lifecycle", Subject: id}
	if !r.speaksAWS() {
		exists.Status, exists.Seen = NotRun, r.notAWS("the Bedrock control plane")
		life.Status, life.Seen = NotRun, exists.Seen
		return append(out, exists, life, r.probe(ctx, id))
	}
	profile := isProfile(id)
	if profile {
		p, err := r.Bedrock.GetInferenceProfile(ctx, &bedrock.GetInferenceProfileInput{InferenceProfileIdentifier: aws.String(id)})
		if err != nil {
			exists = errorResult(exists, err, "GetInferenceProfile")
		} else {
			exists.Status = Pass
			exists.Seen = fmt.Sprintf("inference profile %s (%s, %s) in %s", aws.ToString(p.InferenceProfileName), p.Type, p.Status, r.region)
		}
	}
	base := models.BaseModelID(id)
	if strings.Contains(base, "application-inference-profile") || (profile && base == id) {
		life.Status, life.Seen = NotRun, "an application inference profile does not name its model"
		return append(out, exists, life, r.probe(ctx, id))
	}
	m, err := r.Bedrock.GetFoundationModel(ctx, &bedrock.GetFoundationModelInput{ModelIdentifier: aws.String(base)})
	switch {
	case err != nil && !profile:
		exists = errorResult(exists, err, "GetFoundationModel")
		life.Status, life.Seen = NotRun, "the model was not found"
	case err != nil:
		life.Status, life.Seen = NotRun, "GetFoundationModel("+base+") failed: "+abbreviate(err.Error(), 120)
	default:
		if !profile {
			exists = onDemand(exists, m.ModelDetails, r.region)
		}
		life = lifecycle(life, m.ModelDetails, r.Now())
	}
	return append(out, exists, life, r.probe(ctx, id))
}

// isProfile reports whether id names an inference profile: a
// geography-prefixed id or an inference profile ARN.
func isProfile(id string) bool {
	if strings.HasPrefix(id, "arn:") {
		return strings.Contains(id, "inference-profile/")
	}
	return models.BaseModelID(id) != id
}

// onDemand grades a bare model id: Bedrock must serve it on demand, or
// calls must go through a profile.
func onDemand(res Result, m *bedrocktypes.FoundationModelDetails, region string) Result {
	if m == nil {
		res.Status, res.Seen = Fail, "GetFoundationModel returned no details"
		return res
	}
	id := aws.ToString(m.ModelId)
	if slices.Contains(m.InferenceTypesSupported, bedrocktypes.InferenceTypeOnDemand) {
		res.Status, res.Seen = Pass, fmt.Sprintf("%s (%s) is served on demand in %s", aws.ToString(m.ModelName), id, region)
		return res
	}
	e := catalog.Must(catalog.CodeValidation)
	res.Status, res.Code = Fail, e.Code
	res.Seen = fmt.Sprintf("%s is served only through inference profiles: invoking the bare id fails (\"on-demand throughput isn't supported\")", id)
	res.Fix = "call it through a profile, such as " + geoOf(region) + "." + id + " or global." + id
	return res
}

// lifecycle grades a model's lifecycle: an active model passes, a legacy
// one warns with its dates, one past its end of life fails.
func lifecycle(res Result, m *bedrocktypes.FoundationModelDetails, now time.Time) Result {
	if m == nil || m.ModelLifecycle == nil {
		res.Status, res.Seen = NotRun, "Bedrock reported no lifecycle"
		return res
	}
	l := m.ModelLifecycle
	var dates []string
	if l.LegacyTime != nil {
		dates = append(dates, "legacy since "+l.LegacyTime.UTC().Format(time.DateOnly))
	}
	if l.EndOfLifeTime != nil {
		dates = append(dates, "end of life "+l.EndOfLifeTime.UTC().Format(time.DateOnly))
	}
	seen := "status " + string(l.Status)
	if len(dates) > 0 {
		seen += " (" + strings.Join(dates, ", ") + ")"
	}
	switch {
	case l.EndOfLifeTime != nil && !l.EndOfLifeTime.After(now):
		res = catalogResult(res, Fail, catalog.CodeResourceNotFound, seen+": past its end of life, calls fail")
		res.Fix = "move to an active model (ListFoundationModels lists them); keel's routes can fall back to it meanwhile"
	case l.Status == bedrocktypes.FoundationModelLifecycleStatusLegacy:
		res.Status, res.Seen = Warn, seen
		res.Fix = "plan the move to an active model before the end of life"
	default:
		res.Status, res.Seen = Pass, seen
	}
	return res
}

// Geographies of cross-region inference profiles and the regions each can
// be called from. jp and au are subsets of ap-; ca and us-gov have their
// own prefixes; global is callable from anywhere.
var geoRegions = map[string]func(region string) bool{
	"us":     func(r string) bool { return strings.HasPrefix(r, "us-") && !strings.HasPrefix(r, "us-gov-") },
	"us-gov": func(r string) bool { return strings.HasPrefix(r, "us-gov-") },
	"eu":     func(r string) bool { return strings.HasPrefix(r, "eu-") },
	"apac":   func(r string) bool { return strings.HasPrefix(r, "ap-") },
	"jp":     func(r string) bool { return r == "ap-northeast-1" || r == "ap-northeast-3" },
	"au":     func(r string) bool { return r == "ap-southeast-2" || r == "ap-southeast-4" },
	"ca":     func(r string) bool { return strings.HasPrefix(r, "ca-") },
	"global": func(string) bool { return true },
}

// geoOf is the geography prefix of a region's own profiles.
func geoOf(region string) string {
	for _, g := range []string{"us-gov", "us", "eu", "jp", "au", "apac", "ca"} {
		if geoRegions[g](region) {
			return g
		}
	}
	return "global"
}

// profileFits says whether id can be called from region: a profile's
// geography must cover the region, and an ARN must name the region.
func profileFits(id, region string) (Status, string, string) {
	if strings.HasPrefix(id, "arn:") {
		parts := strings.SplitN(id, ":", 6)
		if len(parts) < 6 || parts[2] != "bedrock" {
			return Fail, id + " is not a Bedrock ARN", "use a model id, an inference profile id or a Bedrock ARN"
		}
		if parts[3] != "" && parts[3] != region {
			return Fail, fmt.Sprintf("the ARN names region %s, not %s", parts[3], region), "use the ARN of " + region + ", or --region " + parts[3]
		}
		return Pass, "the ARN is of " + region, ""
	}
	geo, _, ok := strings.Cut(id, ".")
	if !ok || models.BaseModelID(id) == id {
		return Pass, "a bare model id: called in " + region, ""
	}
	fits, known := geoRegions[geo]
	switch {
	case !known:
		return Warn, fmt.Sprintf("profile prefix %q is not one doctor knows (us, eu, apac, jp, au, ca, us-gov, global)", geo), "check the profile id with ListInferenceProfiles"
	case !fits(region):
		return Fail, fmt.Sprintf("a %s. profile cannot be called from %s (\"The provided model identifier is invalid\")", geo, region),
			fmt.Sprintf("use %s.%s or global.%s from %s, or call %s from a region of its geography", geoOf(region), models.BaseModelID(id), models.BaseModelID(id), region, id)
	}
	return Pass, fmt.Sprintf("a %s. profile, callable from %s", geo, region), ""
}

// probe asks Bedrock Runtime to count the tokens of a one-word message for
// the model: free, and refused as a real call would be when the account may
// not use the model.
func (r *run) probe(ctx context.Context, id string) Result {
	res := Result{Group: GroupAccess, Check: "probe", Subject: id}
	if !r.Probe {
		res.Status, res.Seen = NotRun, "access is checked with --probe (a CountTokens call, free)"
		return res
	}
	_, err := r.Runtime.CountTokens(ctx, &bedrockruntime.CountTokensInput{
		ModelId: aws.String(id),
		Input: &rttypes.CountTokensInputMemberConverse{Value: rttypes.ConverseTokensRequest{
			Messages: []rttypes.Message{{Role: rttypes.ConversationRoleUser, Content: []rttypes.ContentBlock{&rttypes.ContentBlockMemberText{Value: "ping"}}}},
		}},
	})
	if err == nil {
		res.Status, res.Seen = Pass, "CountTokens answered: the account may call "+id+" in "+r.region
		return res
	}
	c := classify.FromError(err)
	if c.Entry != nil && c.Entry.Category == catalog.Validation && catalog.ContainsFold(c.Message, "counting tokens") {
		res.Status, res.Seen = NotRun, "the model does not count tokens, so access was not probed (a 1-token Converse would, and would cost)"
		return res
	}
	return explainDenial(res, err)
}

// explainDenial explains a refused probe in the catalog's words: the
// code, the entry's summary and its first fix (`keel explain CODE` gives
// the cause and every fix).
func explainDenial(res Result, err error) Result {
	res = errorResult(res, err, "CountTokens")
	if res.Code != "" {
		res.Fix += " (keel explain " + res.Code + " tells more)"
	}
	return res
}
