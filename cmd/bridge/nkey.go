package main

import (
	"os"

	"github.com/nats-io/nkeys"
)

// nkeyPublic is the public key of the user seed in file ("" when it cannot be read).
// nats.go reads the seed for every signature but fixes the public key when the option is
// made, so a rotated seed can only be used after a restart.
func nkeyPublic(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return ""
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return ""
	}
	return pub
}
