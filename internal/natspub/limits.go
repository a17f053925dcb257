package natspub

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// MaxSubjectBytes caps a publish subject. nats-server reads a publish's control line
// ("HPUB <subject> <header size> <total size>") into a buffer of max_control_line bytes
// (4096 by default) and closes the connection when it is longer; a subject built from a
// hostile project name must never get there. A subject over the cap fails for good: the
// report is dead-lettered.
const MaxSubjectBytes = 1024

// ErrTooLarge: the message does not fit the server's max_payload. Retrying cannot help.
var ErrTooLarge = errors.New("message over the NATS server's max_payload")

// ErrBadSubject: the rendered subject is too long or would break the protocol line.
var ErrBadSubject = errors.New("subject not publishable")

// CheckSubject reports whether a subject can be published: not empty, at most
// MaxSubjectBytes, no empty token, no whitespace or control character, valid UTF-8.
// It is what keeps a publish from closing the connection (control line too long) or
// being refused as a bad subject.
func CheckSubject(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrBadSubject)
	case len(s) > MaxSubjectBytes:
		return fmt.Errorf("%w: %d bytes, over the cap of %d", ErrBadSubject, len(s), MaxSubjectBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not valid UTF-8", ErrBadSubject)
	}
	prev := byte('.')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			return fmt.Errorf("%w: whitespace or control character at byte %d", ErrBadSubject, i)
		}
		if c == '.' && prev == '.' {
			return fmt.Errorf("%w: empty token at byte %d", ErrBadSubject, i)
		}
		prev = c
	}
	if prev == '.' {
		return fmt.Errorf("%w: ends with a dot", ErrBadSubject)
	}
	return nil
}

// wireSize is what counts against max_payload: the header block and the data, as
// nats.go counts them.
func wireSize(msg *nats.Msg) int { return msg.Size() - len(msg.Subject) - len(msg.Reply) }

// checkFits fails a message that the server would refuse for its size. maxPayload <= 0
// (not connected yet) checks nothing; the publish itself then fails and is retried.
func checkFits(msg *nats.Msg, maxPayload int64) error {
	if maxPayload <= 0 {
		return nil
	}
	if size := wireSize(msg); int64(size) > maxPayload {
		return fmt.Errorf("%w: %d bytes to %s, the server accepts %d", ErrTooLarge, size, msg.Subject, maxPayload)
	}
	return nil
}
