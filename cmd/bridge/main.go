// Command bridge is zuul-bridge: it subscribes to Zuul's MQTT reports, keeps what the
// rules want, republishes it to NATS and keeps incidents on the SCS status page.
//
//	bridge            run (the default; also "bridge run")
//	bridge check      validate the rules and show what payload files would become
//	bridge demo       run on an embedded MQTT broker and NATS server with sample reports
//	bridge version    print the version
//
// The composition root: it is the only package that imports every part.
//
//	MQTT broker --> mqtt.Subscriber --> delivery.Handle --> zuul.Decode --> rules (filter)
//	                     ^ ack                                   |
//	                     +------- settled <-- natspub.Sink, incident.Sink (retry, deadline)
//	                                          dead letters --> NATS
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Set at build time: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	limitProcs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: bridge [run | check [-rules FILE] [PAYLOAD.json ...] | demo | version]

Configuration comes from BRIDGE_* environment variables (see docs/configuration.md).
`

// cli runs a subcommand and returns the exit code: 0 ok, 1 failed at run time,
// 2 bad configuration or usage.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		cfg, err := loadConfig()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		return exitCode(serve(ctx, cfg, newLogger(cfg, stderr), nil), stderr)
	case "check":
		return check(args, stdout, stderr)
	case "demo":
		return exitCode(demo(ctx, stdout, stderr), stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "zuul-bridge %s (commit %s)\n", version, commit)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
	return 2
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, context.Canceled) { // stopped while still starting
		return 0
	}
	fmt.Fprintln(stderr, "zuul-bridge:", err)
	if _, ok := err.(configError); ok {
		return 2
	}
	return 1
}

// configError is a problem with the configuration or the rules, found before connecting.
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }
