//go:build nodemo

package main

import (
	"context"
	"errors"
	"io"
)

// demo is left out of builds with the nodemo tag, which the container image uses
// (deploy/image/build.sh, Dockerfile): the embedded MQTT broker and NATS server are about
// 10 MB of a 26 MB binary, and a deployment never starts them. The tests build without the
// tag.
func demo(context.Context, io.Writer, io.Writer) error {
	return configError{errors.New("this build has no demo (-tags nodemo, as in the container image); run it from the source: go run ./cmd/bridge demo")}
}
