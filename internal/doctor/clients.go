package doctor

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrock"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// clients builds the clients the Setup leaves nil from its AWS
// configuration: in the checked region, one attempt each (a check reports
// what it saw; retrying only stretches its time bound), pointed at the
// endpoint when one is set. The control plane, STS and Service Quotas are
// only pointed at an endpoint that answers them (the emulator); against
// another one their checks do not run.
func (r *run) clients() {
	cfg := r.AWS.Copy()
	cfg.Region = r.region
	cfg.RetryMaxAttempts = 1
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	var base *string
	if r.Setup.Endpoint != "" {
		base = aws.String(r.Setup.Endpoint)
	}
	if r.Runtime == nil {
		r.Runtime = bedrockruntime.NewFromConfig(cfg, func(o *bedrockruntime.Options) { o.BaseEndpoint = base })
	}
	if !r.speaksAWS() {
		return
	}
	if r.Bedrock == nil {
		r.Bedrock = bedrock.NewFromConfig(cfg, func(o *bedrock.Options) { o.BaseEndpoint = base })
	}
	if r.STS == nil {
		r.STS = sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = base })
	}
	if r.Quotas == nil {
		r.Quotas = servicequotas.NewFromConfig(cfg, func(o *servicequotas.Options) { o.BaseEndpoint = base })
	}
}
