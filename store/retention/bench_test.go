package retention

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkApply plans 100,000 versions: hourly versions of 1 or 10 hosts,
// bucketed in Europe/Berlin, with a typical grandfather-father-son policy.
func BenchmarkApply(b *testing.B) {
	loc := zone(b, "Europe/Berlin")
	p := Policy{Last: 3, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12, Yearly: 5, WithinDaily: Duration{Days: 30}}
	const total = 100_000
	for _, hosts := range []int{1, 10} {
		b.Run(fmt.Sprintf("versions=%d/hosts=%d", total, hosts), func(b *testing.B) {
			end := time.Date(2026, 8, 31, 2, 0, 0, 0, loc)
			vs := make([]Version, 0, total)
			for i := range total {
				host := fmt.Sprintf("unit%02d", i%hosts)
				t := end.Add(-time.Duration(i/hosts) * time.Hour)
				vs = append(vs, Version{ID: fmt.Sprintf("%s-%06d", host, i), Host: host, Time: t})
			}
			now := end.Add(time.Hour)
			b.ReportAllocs()
			for b.Loop() {
				plan, err := Apply(vs, p, loc, now, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(plan.Hosts) != hosts {
					b.Fatalf("plan has %d hosts, want %d", len(plan.Hosts), hosts)
				}
			}
		})
	}
}
