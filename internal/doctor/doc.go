// Package doctor checks a setup before it fails: credentials, the clock,
// the models and their access, quotas, the network path and SDK settings
// that fight keel. It is what `keel doctor` runs (docs/doctor.md), built so
// that each check can be tested on its own with fake inputs.
//
// Run takes a Setup (the region, endpoint, models, AWS configuration and
// seams for the environment, the kernel's settings and the clients) and
// returns a Report: one Result per check, each Pass, Warn, Fail or NotRun,
// with what was seen and, for a warning or failure, the fix, in the error
// catalog's words where an AWS error is involved.
//
// Every check is bounded in time. Credentials are looked for first, within
// Setup.CredentialsTimeout (default 5 s); then every other check runs at
// once, each within Setup.CheckTimeout (default 5 s), so a Run ends within
// about the sum of the two (10 s by default) whatever the network does. A
// check that cannot run (no credentials for STS, no --probe, an endpoint
// that is not AWS) says why as NotRun.
package doctor
