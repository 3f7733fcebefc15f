package bedrock

// Target is one model in one region on one service tier: what keel sends an
// attempt to, and the unit keel keeps quota accounting and a circuit breaker
// per.
type Target struct {
	Model  string // model id, inference profile id or ARN, as the call names it
	Region string
	// Tier is the service tier the attempt asks for (TierFlex, ...); empty
	// names none, which Bedrock serves on the default tier.
	Tier string
}

// String renders MODEL@REGION, or MODEL@REGION/TIER when a tier is named.
func (t Target) String() string {
	if t.Tier == "" {
		return t.Model + "@" + t.Region
	}
	return t.Model + "@" + t.Region + "/" + t.Tier
}
