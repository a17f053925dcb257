package bench

import (
	"fmt"
	"testing"

	"github.com/SovereignCloudStack/zuul-bridge/internal/natspub"
	"github.com/SovereignCloudStack/zuul-bridge/internal/zuul"
)

// BenchmarkDecode is zuul.Decode of one MQTT payload.
func BenchmarkDecode(b *testing.B) {
	for _, s := range sizes {
		p := payload(b, s.file)
		b.Run(s.label, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := zuul.Decode(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatch50Routes runs a decoded report through all 50 routes, as the pipeline does.
func BenchmarkMatch50Routes(b *testing.B) {
	routes := loadRoutes(b)
	for _, s := range sizes {
		ev, err := zuul.Decode(payload(b, s.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.label, func(b *testing.B) {
			b.ReportAllocs()
			matched := 0
			for b.Loop() {
				matched = 0
				for i := range routes {
					if routes[i].Match.Match(ev) {
						matched++
					}
				}
			}
			b.ReportMetric(float64(matched), "routes/op")
		})
	}
}

// BenchmarkEncode is the NATS subject and message (headers and JSON body) of one route.
func BenchmarkEncode(b *testing.B) {
	routes := loadRoutes(b)
	r := routes[0]
	for _, s := range sizes {
		ev, err := zuul.Decode(payload(b, s.file))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(s.label, func(b *testing.B) {
			b.ReportAllocs()
			var body int
			for b.Loop() {
				msg, err := natspub.NewMessage(ev, r.Name, r.subject, r.NATS.IncludeRaw)
				if err != nil {
					b.Fatal(err)
				}
				body = len(msg.Data)
			}
			b.ReportMetric(float64(body), "body-B/op")
		})
	}
}

// BenchmarkHotPath is what the bridge does with one report before the network: decode,
// match all 50 routes, and build the message of every route that keeps it. Targets:
// 3.5 KB under 20 µs, 110 KB under 1 ms.
func BenchmarkHotPath(b *testing.B) {
	routes := loadRoutes(b)
	for _, s := range sizes {
		b.Run(s.label, func(b *testing.B) { hotPath(b, routes, payload(b, s.file)) })
	}
}

// BenchmarkHotPathRoutes is BenchmarkHotPath with 1, 50 and 500 routes: how the cost per
// report grows with the rules file. One route keeps each sample in every case, so the
// difference is the matching.
func BenchmarkHotPathRoutes(b *testing.B) {
	for _, n := range []int{1, 50, 500} {
		routes := loadRoutesN(b, n)
		for _, s := range sizes {
			b.Run(fmt.Sprintf("routes=%d/%s", n, s.label), func(b *testing.B) { hotPath(b, routes, payload(b, s.file)) })
		}
	}
}

// hotPath decodes p, matches every route and builds the message of each that keeps it.
func hotPath(b *testing.B, routes []route, p []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	sent := 0
	for b.Loop() {
		ev, err := zuul.Decode(p)
		if err != nil {
			b.Fatal(err)
		}
		sent = 0
		for i := range routes {
			r := &routes[i]
			if !r.Match.Match(ev) {
				continue
			}
			if _, err := natspub.NewMessage(ev, r.Name, r.subject, r.NATS.IncludeRaw); err != nil {
				b.Fatal(err)
			}
			sent++
		}
	}
	b.ReportMetric(float64(sent), "messages/op")
}
