// Package transport builds the HTTP client keel sends Bedrock Runtime
// attempts with, tuned so that connections survive the network paths Bedrock
// traffic usually takes.
//
// NAT gateways, interface VPC endpoints and Network Load Balancers drop a TCP
// connection that has been silent for 350 seconds, without telling either
// end. A pooled connection reused after that, or a long non-streaming
// generation that sends nothing for minutes, then hangs until the operating
// system gives up. The dialer here turns on TCP keep-alive probes after 45 s
// of silence, set per socket (no sysctl needed), and the pool closes idle
// connections after 90 s, both well under 350 s. The probes also notice a
// peer that has vanished mid-call within about 105 s, where Linux's defaults
// would take over two hours.
//
// The client never follows a redirect (NoRedirect): Bedrock Runtime does not
// send one, and following it would carry the SigV4 Authorization header, the
// session token and the prompt to whatever server the Location names.
//
// Most callers want NewClient. docs/policies.md gives each setting's reason.
package transport
