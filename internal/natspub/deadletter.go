package natspub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/nats-io/nats.go"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
)

// DeadLetterer publishes failed reports to subject: the payload exactly as received (it
// may not even be UTF-8), the reason and origin in Bridge-* headers beside those of the
// report messages.
func (p *Publisher) DeadLetterer(subject string) func(ctx context.Context, dl delivery.DeadLetter) error {
	return func(ctx context.Context, dl delivery.DeadLetter) error {
		_, err := p.Publish(ctx, DeadLetterMessage(subject, dl))
		return err
	}
}

// DeadLetterMessage is the dead-letter message of dl.
func DeadLetterMessage(subject string, dl delivery.DeadLetter) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = dl.Payload
	msg.Header.Set("Bridge-Reason", oneLine(dl.Reason))
	msg.Header.Set("Bridge-Topic", oneLine(dl.Topic))
	if dl.ID != "" {
		msg.Header.Set("Bridge-Id", dl.ID)
		msg.Header.Set("Nats-Msg-Id", "deadletter/"+dl.ID+"/"+dl.Route+"/"+dl.Sink)
	} else {
		// Not a report, so no report id: the payload itself identifies a redelivery.
		sum := sha256.Sum256(append([]byte(dl.Topic+"\x00"), dl.Payload...))
		msg.Header.Set("Nats-Msg-Id", "deadletter/payload-"+hex.EncodeToString(sum[:16]))
	}
	if dl.Route != "" {
		msg.Header.Set("Bridge-Route", dl.Route)
		msg.Header.Set("Bridge-Sink", dl.Sink)
	}
	return msg
}

// oneLine makes s a header value: no line breaks, at most 1000 bytes.
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	if len(b) > 1000 {
		b = append(b[:1000], "..."...)
	}
	return string(b)
}
