package httpapi_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"gorm.io/gorm"

	"github.com/cloudreseller/credit/internal/testenv"
)

// BenchmarkSetCredit measures credit changes through the HTTP handler: one
// client after another, and many at once on one customer (they queue on the
// partner and customer row locks).
//
//	MYSQL_TEST_DSN='root@tcp(127.0.0.1:3306)/' go test -run '^$' -bench 'SetCredit|RecordUsage' ./internal/httpapi
func BenchmarkSetCredit(b *testing.B) {
	stores(b, func(b *testing.B, db *gorm.DB) {
		s := testenv.NewServer(b, db)
		_, key := s.CreatePartner(b, "Reseller", "1000000000")
		cust := s.CreateCustomer(b, key, "Acme", false)
		b.Run("serial", func(b *testing.B) {
			for range b.N {
				s.SetCredit(b, key, cust, "1")
			}
		})
		b.Run("parallel-one-customer", func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.SetCredit(b, key, cust, "1")
				}
			})
		})
	})
}

// BenchmarkRecordUsage measures recordUsage calls of 1,000 events spread over
// 50 customers; it reports events per second.
func BenchmarkRecordUsage(b *testing.B) {
	stores(b, func(b *testing.B, db *gorm.DB) {
		s := testenv.NewServer(b, db)
		_, key := s.CreatePartner(b, "Reseller", "1000000000")
		billing := s.CreateKey(b, "feed", "BILLING", "")
		var custs []string
		for i := range 50 {
			id := s.CreateCustomer(b, key, fmt.Sprint("C", i), false)
			s.SetCredit(b, key, id, "1000000")
			custs = append(custs, id)
		}
		var seq atomic.Int64
		b.ResetTimer()
		for range b.N {
			events := make([]map[string]any, 1000)
			for i := range events {
				events[i] = event(fmt.Sprint("ev-", seq.Add(1)), custs[i%len(custs)], "0.01")
			}
			record(b, s, billing, events...)
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
	})
}

func stores(b *testing.B, fn func(b *testing.B, db *gorm.DB)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, testenv.SQLite(b)) })
	b.Run("mysql", func(b *testing.B) { fn(b, testenv.MySQL(b)) })
}

// BenchmarkReads measures the read paths through the HTTP handler: one
// customer by id, and a page of 50 customers (without and with totalCount),
// 8 clients at once.
//
//	MYSQL_TEST_DSN='root@tcp(127.0.0.1:3306)/' go test -run '^$' -bench Reads ./internal/httpapi
func BenchmarkReads(b *testing.B) {
	stores(b, func(b *testing.B, db *gorm.DB) {
		s := testenv.NewServer(b, db)
		_, key := s.CreatePartner(b, "Reseller", "1000000000")
		var custs []string
		for i := range 60 {
			custs = append(custs, s.CreateCustomer(b, key, fmt.Sprint("C", i), false))
		}
		const fields = `id name email credit used available usagePercent status`
		for _, c := range []struct {
			name, query string
			vars        func(i int) map[string]any
		}{
			{"customer", `query($id: ID!) { customer(id: $id) { ` + fields + ` } }`,
				func(i int) map[string]any { return map[string]any{"id": custs[i%len(custs)]} }},
			{"page-of-50", `{ customers(first: 50) { nodes { ` + fields + ` } pageInfo { endCursor } } }`,
				func(int) map[string]any { return nil }},
			{"page-of-50-with-total", `{ customers(first: 50) { totalCount nodes { ` + fields + ` } } }`,
				func(int) map[string]any { return nil }},
		} {
			b.Run(c.name, func(b *testing.B) {
				var n atomic.Int64
				b.SetParallelism(4) // 4 × GOMAXPROCS clients
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						s.Must(b, key, c.query, c.vars(int(n.Add(1))), nil)
					}
				})
			})
		}
	})
}
