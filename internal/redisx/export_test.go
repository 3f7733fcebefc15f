package redisx

import "time"

// SetNow sets the clock of the reply logs' rate limit.
func (c *Client) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}
