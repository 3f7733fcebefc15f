package bedrock

// Target is one model in one region: what keel sends an attempt to, and the
// unit Bedrock counts quotas and keel keeps a circuit breaker per.
type Target struct {
	Model  string // model id, inference profile id or ARN, as the call names it
	Region string
}

// String renders MODEL@REGION.
func (t Target) String() string { return t.Model + "@" + t.Region }
