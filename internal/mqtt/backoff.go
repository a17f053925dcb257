package mqtt

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before reconnect attempt n (autopaho counts from
// 0 after each lost connection; attempt 0 goes at once). The delay doubles
// from min up to max, and a random part of up to a half spreads the
// reconnects of many replicas after a broker restart.
func backoff(min, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		if attempt <= 0 {
			return 0
		}
		d := min
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		if half := int64(d / 2); half > 0 {
			d = d/2 + time.Duration(rand.Int64N(half+1))
		}
		return d
	}
}
