package config

// ValidRegion reports whether s looks like an AWS region name (us-east-1,
// eu-central-2, us-gov-west-1): the rule region: and a target's region
// are checked by, for flags that name a region.
func ValidRegion(s string) bool { return validRegion(s) }
