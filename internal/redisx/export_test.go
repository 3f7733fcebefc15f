package redisx

import (
	"context"
	"time"
)

// SetNow sets the clock of the reply logs' rate limit.
func (c *Client) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

// Beat runs one heartbeat now.
func (c *Client) Beat(ctx context.Context) error { return c.beat(ctx) }

// SetBeatEvery sets the interval of the heartbeats of the Clients opened
// until the func it returns is called.
func SetBeatEvery(d time.Duration) (restore func()) {
	old := beatEvery
	beatEvery = d
	return func() { beatEvery = old }
}

// HeartbeatTTL is how long a heartbeat counts.
const HeartbeatTTL = heartbeatTTL

// WaitAccount waits for the look-up of the account (Options.Account) and
// its first claim to end.
func (c *Client) WaitAccount() { <-c.looked }

// Claim renews the account's claim now, as a heartbeat does.
func (c *Client) Claim(ctx context.Context) { c.claim(ctx) }
