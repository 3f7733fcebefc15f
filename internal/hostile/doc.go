// Package hostile is an upstream that misbehaves the way real networks and
// proxies do in front of Amazon Bedrock, for keel's engine and CLI tests. It
// speaks just enough of the Bedrock Runtime wire protocol (Converse JSON,
// ConverseStream event streams) to be taken for the service, then breaks the
// exchange in one chosen way. Unlike package emulator it has no models,
// quotas or scenarios: one Options value says exactly what every byte of the
// reply is and how it is sent, so a test can predict sizes and timings.
//
// Each Mode imitates something met in production:
//
//   - Truncate: a NAT gateway or proxy drops an idle or long-lived flow, or
//     a load balancer is redeployed mid-reply. The status line and headers
//     arrived, the body stops short of its Content-Length, and the
//     connection closes cleanly (FIN). Clients read io.ErrUnexpectedEOF.
//   - Reset: the same cut, but by a middlebox or a crashing host that
//     answers with a TCP RST. Clients read ECONNRESET.
//   - Hang: a region in a partial outage, or a black-holed route: the
//     request is accepted and nothing ever comes back. Only the caller's
//     deadline ends it.
//   - Drip: an overloaded upstream or a congested link that sends a valid
//     reply a few bytes at a time, so every read succeeds and the whole
//     reply takes minutes. Per-read timeouts do not catch it; an attempt
//     deadline does.
//   - HugeBody and HugeStream: a reply far larger than any real one (a
//     misbehaving proxy, a model looping until max tokens, an attacker's
//     endpoint), which a client that buffers without bound pays for in
//     memory.
//   - Redirect: a misconfigured endpoint (http to https, a moved host, a
//     captive portal) answering 3xx. A client that follows it sends the
//     signed request, credentials and prompt to somebody else.
//   - HTMLError: a load balancer, CDN or corporate proxy answering 502, 503
//     or 504 with its own HTML page instead of the service's JSON error.
//   - OK: a normal small reply, the baseline and the "after" of a Sequence.
//
// Handler answers every request with one Options; Sequence changes the
// answer from one request to the next (fail twice, then succeed) and counts
// requests; ByRegion routes by the region of the request's SigV4 signature,
// so one upstream can hang in us-east-1 and answer in us-west-2.
//
// Listen serves a handler on 127.0.0.1; Pipe serves it over in-memory
// connections, where every wait is durable inside a testing/synctest bubble:
// a Hang lets bubble time run to the caller's deadline at once, and a Drip
// takes exactly its bubble time. Close on either ends every request in
// flight, Hang included, and stops every goroutine. A Handler also works
// with a plain httptest.Server; call its CloseClientConnections before Close
// when a Hang may still be in flight.
package hostile
