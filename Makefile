# Shortcuts; every target is one plain command that also works without make.
.PHONY: demo test race bench bench-e2e chart ci

demo:        ## the bridge on embedded brokers with the sample reports
	go run ./cmd/bridge demo

test:        ## the tests (README)
	go test ./...

race:        ## the tests as CI runs them
	go test -race ./...

bench:       ## hot-path Go benchmarks
	go test -run '^$$' -bench . -benchmem ./internal/bench ./internal/filter

bench-e2e:   ## end-to-end load harness: real mosquitto and nats-server, bridge vs minimal forwarder
	go run ./tools/loadtest

chart:       ## Helm chart checks, offline
	deploy/check.sh

ci:          ## everything CI runs
	bash .ci/run
