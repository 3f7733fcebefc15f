package quotas

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
)

// API is the part of the Service Quotas client this package uses;
// *servicequotas.Client implements it.
type API interface {
	ListServiceQuotas(ctx context.Context, in *servicequotas.ListServiceQuotasInput, opts ...func(*servicequotas.Options)) (*servicequotas.ListServiceQuotasOutput, error)
}

// Quota is one per-model quota as Service Quotas reports it.
type Quota struct {
	Kind  Kind
	Model string // the model part of the name ("Anthropic Claude Sonnet 4.5")
	Name  string
	Code  string // the quota code ("L-...")
	Value float64
}

// Int returns the quota's value as a whole number of tokens, rounded down
// and kept within int64.
func (q Quota) Int() int64 {
	switch {
	case !(q.Value > 0):
		return 0
	case q.Value >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(q.Value)
}

// pageSize is the most quotas Service Quotas returns a page (its
// MaxResults allows 1 to 100).
const pageSize = 100

// maxPages bounds how many pages List reads: Bedrock lists a few hundred
// quotas per region, so 50 pages of 100 is ample, and a service that
// keeps answering with a next token cannot keep List going for ever.
const maxPages = 50

// ErrNotListed is returned by Discover when Service Quotas lists no
// tokens-per-minute quota for the target's model and way of calling it.
var ErrNotListed = errors.New("quotas: not listed")

// List reads the per-model quotas of service code bedrock in the client's
// region, following pages. Quotas that are not per-model token quotas are
// left out.
func List(ctx context.Context, api API) ([]Quota, error) {
	var out []Quota
	in := &servicequotas.ListServiceQuotasInput{ServiceCode: aws.String(ServiceCode), MaxResults: aws.Int32(pageSize)}
	for page := 0; ; page++ {
		if page == maxPages {
			return out, fmt.Errorf("quotas: ListServiceQuotas still had more after %d pages", maxPages)
		}
		res, err := api.ListServiceQuotas(ctx, in)
		if err != nil {
			return out, fmt.Errorf("quotas: ListServiceQuotas: %w", err)
		}
		for _, q := range res.Quotas {
			name := aws.ToString(q.QuotaName)
			kind, model := Parse(name)
			if kind == None || q.Value == nil {
				continue
			}
			out = append(out, Quota{Kind: kind, Model: model, Name: name, Code: aws.ToString(q.QuotaCode), Value: *q.Value})
		}
		if aws.ToString(res.NextToken) == "" {
			return out, nil
		}
		in.NextToken = res.NextToken
	}
}

// Limits are the quotas one target is held to; a Quota whose Kind is None
// was not listed.
type Limits struct {
	TokensPerMinute Quota
	TokensPerDay    Quota
}

// For picks from qs the quotas a call naming id draws on: the
// tokens-per-minute quota of KindOf(id) and the model's tokens per day.
func For(qs []Quota, id string) Limits {
	var l Limits
	want := KindOf(id)
	for _, q := range qs {
		if !Match(q.Model, id) {
			continue
		}
		switch {
		case q.Kind == want && l.TokensPerMinute.Kind == None:
			l.TokensPerMinute = q
		case q.Kind == PerDay && l.TokensPerDay.Kind == None:
			l.TokensPerDay = q
		}
	}
	return l
}

// Discover reads the tokens-per-minute quota a call naming id draws on in
// the client's region: what the governor should be told. It returns
// ErrNotListed when Service Quotas lists none for the model (a model keel's
// table does not know, an application inference profile, an endpoint that
// is not AWS), and the API's error, wrapped, when the call fails (an
// AccessDeniedException without servicequotas:ListServiceQuotas).
func Discover(ctx context.Context, api API, id string) (Quota, error) {
	qs, err := List(ctx, api)
	if err != nil {
		return Quota{}, err
	}
	return PerMinute(qs, id)
}

// PerMinute picks from qs, as List returns them, the tokens-per-minute
// quota a call naming id draws on, or returns ErrNotListed: Discover for a
// caller that lists once for several targets.
func PerMinute(qs []Quota, id string) (Quota, error) {
	q := For(qs, id).TokensPerMinute
	if q.Kind == None {
		return Quota{}, fmt.Errorf("%w: no %s tokens-per-minute quota for %s", ErrNotListed, KindOf(id), id)
	}
	return q, nil
}
