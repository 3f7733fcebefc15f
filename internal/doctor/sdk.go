package doctor

import (
	"context"
	"fmt"
	"strings"

	"github.com/keel-run/keel/internal/config"
	"github.com/keel-run/keel/internal/retry"
)

// sdkRetries reports the SDK's own retry settings: keel turns the SDK's
// retries off on the clients it is plugged into, so there they are
// ignored, but a client without keel (or one calling keel serve) retries
// on top of keel's attempts, and the attempts multiply.
func (r *run) sdkRetries(context.Context) []Result {
	res := Result{Group: GroupSDK, Check: "retries"}
	var set []string
	for _, name := range []string{"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} {
		if v := r.Getenv(name); v != "" {
			set = append(set, name+"="+v)
		}
	}
	if len(set) == 0 && r.AWS.RetryMaxAttempts > 1 {
		set = append(set, fmt.Sprintf("max_attempts = %d in the AWS profile", r.AWS.RetryMaxAttempts))
	}
	if len(set) == 0 && r.AWS.RetryMode != "" {
		set = append(set, "retry_mode = "+string(r.AWS.RetryMode)+" in the AWS profile")
	}
	keel := attempts(r.Config)
	if len(set) == 0 {
		res.Status = Pass
		res.Seen = fmt.Sprintf("no SDK retry settings; keel makes up to %d attempts per target, with the SDK's own retries off", keel)
		return []Result{res}
	}
	res.Status = Warn
	res.Seen = fmt.Sprintf("%s: keel ignores it on the clients it is plugged into (up to %d attempts per target), but any other client retries by it, and one that calls keel serve multiplies keel's attempts by it",
		strings.Join(set, ", "), keel)
	res.Fix = "unset it where keel does the retrying; for clients of keel serve set AWS_MAX_ATTEMPTS=1"
	return []Result{res}
}

// attempts is keel's configured attempts per target.
func attempts(c *config.Config) int {
	if c.Retry.MaxAttempts > 0 {
		return c.Retry.MaxAttempts
	}
	return retry.DefaultMaxAttempts
}

// endpointOverrides are the variables that send an SDK's Bedrock calls
// somewhere else than AWS's endpoint, for every client that reads them.
var endpointOverrides = []string{"AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL_BEDROCK", "AWS_ENDPOINT_URL"}

// sdkEndpoint reports an endpoint set in the environment: every SDK
// client built from it, keel's included, talks to that address instead of
// Bedrock.
func (r *run) sdkEndpoint(context.Context) []Result {
	res := Result{Group: GroupSDK, Check: "endpoint-override"}
	for _, name := range endpointOverrides {
		if v := r.Getenv(name); v != "" {
			res.Status = Warn
			res.Seen = fmt.Sprintf("%s=%s: SDK clients send Bedrock calls there, not to AWS's endpoint (doctor checked %s)", name, v, r.endpoint)
			res.Fix = "unset " + name + " unless you mean every client to use it; keel's own endpoint setting is endpoint: in its configuration"
			return []Result{res}
		}
	}
	res.Status, res.Seen = Pass, "no AWS_ENDPOINT_URL* variable redirects the SDK"
	return []Result{res}
}
