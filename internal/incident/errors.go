package incident

import "fmt"

// temporaryError is a failure of the incident logic itself that the same report overcomes
// later (another replica holds the key, the key store is unreachable, the manager has not
// started). statuspage.Retryable sees its Temporary method, so Send says retry.
type temporaryError struct {
	op  string
	err error
}

func (e *temporaryError) Error() string   { return fmt.Sprintf("statuspage: %s: %v", e.op, e.err) }
func (e *temporaryError) Unwrap() error   { return e.err }
func (e *temporaryError) Temporary() bool { return true }
