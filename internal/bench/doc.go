// Package bench holds the Go benchmarks of the bridge's hot path: decode,
// rule matching with 50 routes, NATS subject and body encoding, and the three together,
// for the 1 KB, 3.5 KB and 110 KB sample reports. It has no code of its own; run
//
//	go test -run '^$' -bench . -benchmem ./internal/bench
//
// and see tools/loadtest for the end-to-end measurement against real brokers.
package bench
