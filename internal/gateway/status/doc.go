// Package status is what the gateway shows of itself: per-caller traffic,
// as Prometheus metrics and in memory, and a status page.
//
// A Recorder is told of each request the gateway answered (Observe, once
// per request, with an Event) and keeps, per caller, the requests, tokens,
// keel's own refusals by catalog code and the latest failures; it counts
// the same in Prometheus metrics on the registry it was given. Handler
// serves the status page: server-rendered HTML that refreshes itself every
// few seconds, showing per target (from the engine's Snapshot) the breaker
// state, quota use against the limit, queue depth per class and recent
// errors by code, and per caller the traffic and refusals; the same figures
// as JSON at /status.json or with ?format=json. Neither keeps or shows any
// prompt or reply text: an Event has none.
package status
