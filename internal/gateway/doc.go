// Package gateway serves the Bedrock Runtime API over HTTP through keel's
// engine, so that any official SDK (Go, JavaScript, Python, the Anthropic
// Bedrock SDKs) gains keel's quota governor, retries, breakers, fallbacks
// and stream resumes by changing its endpoint URL.
//
// A Server answers POST /model/{modelId}/{converse, converse-stream, invoke,
// invoke-with-response-stream, count-tokens} exactly as a library call
// through keel does: the caller's body and headers become an engine.Call,
// sent with the gateway's own upstream credentials and endpoints and signed
// anew per attempt. Successes are the upstream's bytes (an event stream is
// copied frame by frame, flushed after each write); failures keep Bedrock's
// error shape and true status, and keel's own refusals become the Bedrock
// error a caller already handles (see BedrockError). Every response carries
// X-Keel-Attempts and X-Keel-Code; a stream sends them as HTTP trailers,
// since they are known only at its end.
//
// The Server also answers /healthz, /readyz, /metrics and a status page at
// /, and Serve/Shutdown run it on a listener with HTTP/1.1 and HTTP/2 (h2c
// with prior knowledge on a plain listener, h2 over TLS), header and idle
// timeouts, a per-write deadline for streams and a drain on shutdown.
//
// Options has seams for what other packages provide: Authenticate (inbound
// auth), Limit (per-caller token budgets), Observe (per-caller metrics) and
// Status (the status page). docs/gateway.md describes the whole gateway.
package gateway
