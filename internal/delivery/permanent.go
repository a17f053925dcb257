package delivery

import "errors"

// Permanent marks err as one that retrying cannot fix. A DeadLetter function returns it
// for a dead letter the server refuses for good (its subject, a permission): the
// Dispatcher then stops retrying, logs and counts the loss
// (zuul_bridge_dead_letter_failures_total) and acknowledges the message, so that one
// poison report cannot stall the stream.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}
