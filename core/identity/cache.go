package identity

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/presence-service/presence/core"
)

// cacheKey is the SHA-256 of an assertion: the cache never holds the
// assertions themselves, which are bearer credentials.
type cacheKey [sha256.Size]byte

type cacheEntry struct {
	key   cacheKey
	id    core.Identity
	until time.Time
}

// lruCache maps verified assertions to identities until a deadline, holding
// at most size entries and dropping the least recently used beyond that.
type lruCache struct {
	size int

	mu    sync.Mutex // guards: order, items
	order *list.List // of *cacheEntry, most recently used first
	items map[cacheKey]*list.Element
}

func newLRUCache(size int) *lruCache {
	return &lruCache{size: size, order: list.New(), items: make(map[cacheKey]*list.Element)}
}

// get returns the identity cached for key if it is still good at now.
func (c *lruCache) get(key cacheKey, now time.Time) (core.Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return core.Identity{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.until) {
		c.removeLocked(el)
		return core.Identity{}, false
	}
	c.order.MoveToFront(el)
	return e.id, true
}

// put caches id for key until the given time.
func (c *lruCache) put(key cacheKey, id core.Identity, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		e.id, e.until = id, until
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&cacheEntry{key: key, id: id, until: until})
	for c.order.Len() > c.size {
		c.removeLocked(c.order.Back())
	}
}

func (c *lruCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *lruCache) removeLocked(el *list.Element) {
	c.order.Remove(el)
	delete(c.items, el.Value.(*cacheEntry).key)
}
