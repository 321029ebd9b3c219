package virgil

import "sync"

// maxCacheEntries bounds each of the package's memo caches.
const maxCacheEntries = 1 << 14

// memo is a bounded, concurrency-safe map for results that never go stale
// (they are keyed by a digest of their input). When full it starts again
// empty, which keeps it bounded without bookkeeping.
type memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

func (c *memo[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *memo[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCacheEntries {
		c.m = make(map[K]V)
	}
	c.m[k] = v
}
