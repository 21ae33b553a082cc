package keys

import (
	"sync"
	"time"

	"github.com/cloudreseller/credit/internal/auth"
	"github.com/cloudreseller/credit/models"
)

// maxCached bounds the cache; when full it starts over.
const maxCached = 10000

// cache keeps key look-ups for a short time, so that a busy key does not cost a
// query per request. Revocation on this process drops an entry at once.
type cache struct {
	ttl    time.Duration
	mu     sync.Mutex
	byKey  map[string]*entry // by hash
	hashes map[uint]string   // key id to hash
}

type entry struct {
	principal auth.Principal
	err       error
	expires   time.Time
}

func newCache(ttl time.Duration) *cache {
	return &cache{ttl: ttl, byKey: map[string]*entry{}, hashes: map[uint]string{}}
}

func (c *cache) put(hash string, k *models.APIKey) {
	p, err := principalOf(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byKey) >= maxCached {
		c.byKey, c.hashes = map[string]*entry{}, map[uint]string{}
	}
	c.byKey[hash] = &entry{principal: p, err: err, expires: time.Now().Add(c.ttl)}
	c.hashes[k.ID] = hash
}

// byHash returns the live entry of a key, or nil.
func (c *cache) byHash(hash string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byKey[hash]
	if e == nil || time.Now().After(e.expires) {
		return nil
	}
	return e
}

// byID returns the live entry of a key, or nil.
func (c *cache) byID(id uint) *entry {
	c.mu.Lock()
	hash, ok := c.hashes[id]
	c.mu.Unlock()
	if !ok {
		return nil
	}
	return c.byHash(hash)
}

func (c *cache) drop(id uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byKey, c.hashes[id])
	delete(c.hashes, id)
}

// ids lists the keys with live entries (expired ones are removed).
func (c *cache) ids() []uint {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	var out []uint
	for id, hash := range c.hashes {
		if e := c.byKey[hash]; e == nil || now.After(e.expires) {
			delete(c.byKey, hash)
			delete(c.hashes, id)
			continue
		}
		out = append(out, id)
	}
	return out
}
