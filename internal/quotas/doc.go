// Package quotas reads Amazon Bedrock's per-model quotas from the Service
// Quotas API (service code "bedrock") and maps them to the targets keel
// calls: a bare model id is held to the model's on-demand tokens-per-minute
// quota, a geographic cross-region inference profile ("us.", "eu.", ...) to
// its cross-region quota, a global profile ("global.") to its global
// cross-region quota, and every one of them to the model's tokens-per-day
// quota.
//
// Bedrock names these quotas after the model's display name, not its id
// (userguide/quotas-runtime.html):
//
//	On-demand InvokeModel tokens per minute for ${model}
//	Cross-Region InvokeModel tokens per minute for ${model}
//	Global cross-Region InvokeModel tokens per minute for ${model}
//	Model invocation max tokens per day for ${model}
//
// so Parse splits a name into its Kind and model, and Match ties the model
// to an id through keel's model table (internal/bedrock): the provider and
// display name ("Anthropic Claude Sonnet 4.5"), compared without case, with
// an optional trailing " V1". The global name is the one AWS's documentation
// does not list in that table; it is matched by its prefix, whatever follows
// "Global cross-Region". Name builds the same names, for the emulator.
//
// Discover (discover.go) reads the quotas with the official Service Quotas
// client. The package holds no state and is safe for concurrent use.
package quotas
