// Package scenario reads the emulator's scenario files and decides, for each
// request, how the emulator misbehaves.
//
// A scenario file is YAML with two lists: quotas, the per model and region
// limits the quota package enforces, and rules, each of which matches
// requests by model, region and operation ('*' patterns) and says what goes
// wrong for them: catalog errors with a probability, outage windows, added
// latency, hangs, refused connections, broken event streams, and cold starts
// that answer ModelNotReadyException. Parse and Load read a file strictly: an
// unknown key, a bad value or a code the catalog does not know is an error
// naming the line and the key.
//
// An Injector turns a Scenario into a fault.Plan per request. Its randomness
// is seeded, one stream per model and region, so the same seed and the same
// requests give the same plans, whatever other models and regions are doing.
// Most callers make one Injector when the emulator starts, hand its Plan
// method to the server, and call Replace when the scenario changes.
package scenario
