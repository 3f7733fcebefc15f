// Package emulator is an Amazon Bedrock Runtime that runs in-process or as
// `keel emulate`, speaks the service's wire protocol closely enough that the
// official SDKs cannot tell it from Bedrock, and misbehaves on demand.
//
// It serves Converse, ConverseStream, InvokeModel (Anthropic, Nova, Llama
// and Titan bodies), InvokeModelWithResponseStream and CountTokens under
// /model/{modelId}/..., and the control plane's ListFoundationModels and
// GetFoundationModel under /foundation-models and ListInferenceProfiles and
// GetInferenceProfile under /inference-profiles; and, for `keel doctor`
// and quota discovery, STS GetCallerIdentity and Service Quotas'
// GetServiceQuota and ListServiceQuotas (service code bedrock, the limits
// Options.Quota gives) as POST / (aws.go). For batch inference it serves
// CreateModelInvocationJob, GetModelInvocationJob, ListModelInvocationJobs
// and StopModelInvocationJob (jobs.go), whose jobs run on the server's
// clock (Options.JobPlanner sets their pace, quotas and faults), and a
// path-style S3 (package s3) for their input and output, chosen when a
// request's SigV4 credential scope names the service s3. Its models are keel's
// model table (internal/bedrock/models.json), with the anthropic_version
// values, prefill rule and profiles each takes. Replies come from package
// reply: deterministic text with token counts that follow its size, so a
// test can predict every byte, and a broken stream can be resumed exactly.
// Errors are answered as the service answers them, with status, code and
// message from keel's error catalog; event streams are framed with the
// SDK's own encoder.
//
// One emulator stands for every region: a request's region is the one its
// SigV4 credential scope names, else a /region/{region} path prefix, else
// Options.DefaultRegion.
//
// How a request misbehaves is decided per request by Options.Planner (the
// scenario package plugs in there) and carried out by the server: refused or
// hung connections, added latency, catalog errors, and broken event streams
// (exception and error frames, truncation, corrupt CRCs, TCP resets,
// stalls). Quotas and signature checks plug in through Options.Admit,
// Options.Settle and Options.Verify, a wrong clock through
// Options.ClockSkew.
//
// Most tests want Start, which listens on 127.0.0.1 and returns the URL to
// give an SDK as its endpoint. A Server is safe for concurrent use.
package emulator
