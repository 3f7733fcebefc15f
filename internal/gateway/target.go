package gateway

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/keel-run/keel/internal/bedrock"
)

// awsRegion is the shape of an AWS region name: the region patterns of the
// AWS SDKs' partitions (aws, aws-cn, aws-us-gov, the aws-iso ones and
// aws-eusc; aws-sdk-go-v2 internal/endpoints/awsrulesfn/partitions.go),
// with the middle word narrowed to the directions region names use and the
// number to one or two digits. A caller picks its SigV4 scope's region
// freely, and each region makes engine state (breakers, quota limiters,
// metric series) and picks the upstream host, so a name that is no AWS
// region is refused before the engine sees it. (config.ValidRegion, which
// checks the regions an operator writes, takes any dash-separated lowercase
// name; a caller's is held to this stricter shape.)
var awsRegion = regexp.MustCompile(`^(us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov|us-iso|us-isob|us-isof|eu-isoe|eusc-de)-` +
	`(east|west|north|south|central|northeast|southeast|northwest|southwest)-[0-9]{1,2}$`)

// targetRefusal returns why the gateway refuses a call for region (its
// SigV4 scope's; "" for none) on tier (its serviceTier; "" for none), or
// nil, in the words of Bedrock's validation errors.
func targetRefusal(region, tier string) *Refusal {
	if region != "" && !awsRegion.MatchString(region) {
		return validation(fmt.Sprintf("keel gateway: the request is signed for region %q, which is not an AWS region name "+
			"such as us-east-1; sign for the region you mean to call", shownValue(region)))
	}
	if tier != "" && !bedrock.ValidTier(tier) {
		return validation(fmt.Sprintf("1 validation error detected: Value %q at 'serviceTier.type' failed to satisfy constraint: "+
			"Member must satisfy enum value set: [%s]", shownValue(tier), strings.Join(bedrock.Tiers(), ", ")))
	}
	return nil
}

// maxShownValue bounds how much of a caller's value a refusal quotes.
const maxShownValue = 64

func shownValue(s string) string {
	if len(s) > maxShownValue {
		return s[:maxShownValue] + "..."
	}
	return s
}
