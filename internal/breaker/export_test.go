package breaker

// Test-only: production code has no use for it.

// Each calls fn for every breaker, in no particular order, until fn returns
// false. fn may call the breaker's methods, but not the Registry's Get.
func (r *Registry) Each(fn func(*Breaker) bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, b := range r.m {
		if !fn(b) {
			return
		}
	}
}
