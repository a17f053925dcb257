package mqtt

import (
	"time"

	"github.com/SovereignCloudStack/zuul-bridge/internal/retry"
)

// backoff returns the delay before reconnect attempt n (autopaho counts from 0 after each
// lost connection; attempt 0 goes at once, later ones follow retry.Backoff).
func backoff(min, max time.Duration) func(attempt int) time.Duration {
	b := retry.Backoff{Min: min, Max: max}
	return func(attempt int) time.Duration {
		if attempt <= 0 {
			return 0
		}
		return b.Delay(attempt - 1)
	}
}
