package webhook

import (
	"context"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/models"
)

// endpointTTL is how long a sender trusts an endpoint it read: a change made
// through another process reaches its deliveries within that.
const endpointTTL = time.Second

// cacheIdle is how long an endpoint no delivery asked for stays cached.
const cacheIdle = time.Minute

// refreshBatch bounds the endpoints one read refreshes.
const refreshBatch = 500

// endpointCache keeps the endpoints deliveries are sent to. An entry is
// trusted for endpointTTL, and changes made through this process forget
// theirs at once. When one entry must be read, every entry past half its
// life is read with it, in one statement: a hundred busy endpoints cost
// about one read a second, not one each (a read per endpoint was a third of
// the statements delivery sent the database).
type endpointCache struct {
	mu   sync.Mutex
	rows map[uint]*cachedEndpoint
	// gen counts forgets: a read that began before one is not kept.
	gen uint64
	// reading is the read under way, if any.
	reading *cacheRead
}

type cachedEndpoint struct {
	row  *endpointRow // nil: there is none
	read time.Time
	used time.Time
}

// get returns a copy of the endpoint (nil when there is none).
func (c *endpointCache) get(ctx context.Context, db *gorm.DB, id uint) (*endpointRow, error) {
	c.mu.Lock()
	e, ok := c.fresh(id)
	r := c.reading
	c.mu.Unlock()
	if ok {
		return e, nil
	}
	// A read under way that covers id serves it: workers of many endpoints
	// find theirs stale at the same moment.
	if r != nil && r.ids[id] {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		e, ok = c.fresh(id)
		c.mu.Unlock()
		if ok {
			return e, nil
		}
	}
	return c.read(ctx, db, id)
}

// read reads id and the entries due with it in one statement, keeps them
// unless something was forgotten meanwhile, and returns a copy of id's.
func (c *endpointCache) read(ctx context.Context, db *gorm.DB, id uint) (*endpointRow, error) {
	now := time.Now()
	c.mu.Lock()
	ids, gen := c.due(id, now), c.gen
	r := &cacheRead{ids: make(map[uint]bool, len(ids)), done: make(chan struct{})}
	for _, k := range ids {
		r.ids[k] = true
	}
	if c.reading == nil {
		c.reading = r
	}
	c.mu.Unlock()
	var rows []endpointRow
	err := db.WithContext(ctx).Table("webhook_endpoints").Where("id IN ?", ids).Find(&rows).Error
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reading == r {
		c.reading = nil
	}
	close(r.done)
	if err != nil {
		return nil, err
	}
	found := make(map[uint]*endpointRow, len(rows))
	for i := range rows {
		found[rows[i].ID] = &rows[i]
	}
	if c.gen == gen {
		c.keep(ids, found, now)
	}
	return clone(found[id]), nil
}

// keep stores what a read found of ids (absent: there is none). c.mu is held.
func (c *endpointCache) keep(ids []uint, found map[uint]*endpointRow, now time.Time) {
	if c.rows == nil {
		c.rows = map[uint]*cachedEndpoint{}
	}
	for _, k := range ids {
		e := c.rows[k]
		if e == nil {
			e = &cachedEndpoint{used: now}
			c.rows[k] = e
		}
		e.row, e.read = found[k], now
	}
}

// cacheRead is a read of endpoints under way.
type cacheRead struct {
	ids  map[uint]bool
	done chan struct{}
}

// fresh returns a copy of id's entry if it is still trusted. c.mu is held.
func (c *endpointCache) fresh(id uint) (*endpointRow, bool) {
	now := time.Now()
	e := c.rows[id]
	if e == nil || now.Sub(e.read) > endpointTTL {
		return nil, false
	}
	e.used = now
	return clone(e.row), true
}

// due lists id and the entries to read with it: those past half their life,
// up to refreshBatch. Entries unused for cacheIdle are dropped. c.mu is held.
func (c *endpointCache) due(id uint, now time.Time) []uint {
	ids := []uint{id}
	for k, e := range c.rows {
		switch {
		case k == id:
		case now.Sub(e.used) > cacheIdle:
			delete(c.rows, k)
		case now.Sub(e.read) > endpointTTL/2 && len(ids) < refreshBatch:
			ids = append(ids, k)
		}
	}
	return ids
}

// failingSince tells, for each of ids whose entry is still trusted, when it
// started failing (nil: it is not failing).
func (c *endpointCache) failingSince(ids []uint) map[uint]*time.Time {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	known := make(map[uint]*time.Time, len(ids))
	for _, id := range ids {
		if e := c.rows[id]; e != nil && e.row != nil && now.Sub(e.read) <= endpointTTL {
			known[id] = e.row.FailingSince
		}
	}
	return known
}

// forget drops endpoints, to be read again.
func (c *endpointCache) forget(ids ...uint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, id := range ids {
		delete(c.rows, id)
	}
}

func clone(e *endpointRow) *endpointRow {
	if e == nil {
		return nil
	}
	c := *e
	return &c
}

// payloadsKept is how many alerts' bodies payloadCache keeps.
const payloadsKept = 1024

// payloadCache keeps the bodies of recent alerts: an alert goes to every
// endpoint of its partner with the same body, encoded once.
type payloadCache struct {
	mu     sync.Mutex
	bodies map[uint][]byte
	ring   [payloadsKept]uint
	next   int
}

// get returns the body of a (shared: not to be modified).
func (p *payloadCache) get(a *models.Alert) ([]byte, error) {
	p.mu.Lock()
	body, ok := p.bodies[a.ID]
	p.mu.Unlock()
	if ok {
		return body, nil
	}
	body, err := payloadOf(a)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bodies == nil {
		p.bodies = make(map[uint][]byte, payloadsKept)
	}
	if _, ok := p.bodies[a.ID]; !ok {
		delete(p.bodies, p.ring[p.next])
		p.ring[p.next] = a.ID
		p.next = (p.next + 1) % payloadsKept
		p.bodies[a.ID] = body
	}
	return body, nil
}
