package natspub

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/SovereignCloudStack/zuul-bridge/internal/delivery"
)

// DefaultMaxPayload is NATS's default max_payload (1 MiB); it bounds a dead letter while
// the server's own value is not known yet (not connected).
const DefaultMaxPayload = 1 << 20

// deadLetterSlack is kept free below max_payload beside the headers counted exactly.
const deadLetterSlack = 256

// DeadLetterer publishes failed reports to subject: the payload exactly as received (it
// may not even be UTF-8), the reason and origin in Bridge-* headers beside those of the
// report messages. A payload that would not fit the server's max_payload is cut to its
// head (Bridge-Payload-Truncated), so a dead letter never fails for its size. An error
// that retrying cannot fix (the subject refused, a permission violation) is returned
// as delivery.Permanent.
func (p *Publisher) DeadLetterer(subject string) func(ctx context.Context, dl delivery.DeadLetter) error {
	return func(ctx context.Context, dl delivery.DeadLetter) error {
		retry, err := p.Publish(ctx, DeadLetterMessage(subject, dl, p.nc.MaxPayload()))
		if err != nil && !retry {
			return delivery.Permanent(err)
		}
		return err
	}
}

// DeadLetterMessage is the dead-letter message of dl, at most maxPayload bytes on the
// wire (<= 0: DefaultMaxPayload). Bridge-Payload-Size and Bridge-Payload-Sha256 describe
// the payload as received, also when the body holds only its head.
func DeadLetterMessage(subject string, dl delivery.DeadLetter, maxPayload int64) *nats.Msg {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	msg := nats.NewMsg(subject)
	h := msg.Header
	h.Set("Bridge-Reason", oneLine(dl.Reason))
	h.Set("Bridge-Topic", oneLine(dl.Topic))
	if dl.ID != "" {
		h.Set("Bridge-Id", oneLine(dl.ID))
		h.Set("Nats-Msg-Id", msgID("deadletter/"+dl.ID+"/"+dl.Route+"/"+dl.Sink))
	} else {
		// Not a report, so no report id: the payload itself identifies a redelivery.
		sum := sha256.Sum256(append([]byte(dl.Topic+"\x00"), dl.Payload...))
		h.Set("Nats-Msg-Id", "deadletter/payload-"+hex.EncodeToString(sum[:16]))
	}
	if dl.Route != "" {
		h.Set("Bridge-Route", oneLine(dl.Route))
		h.Set("Bridge-Sink", oneLine(dl.Sink))
	}
	sum := sha256.Sum256(dl.Payload)
	h.Set("Bridge-Payload-Size", strconv.Itoa(len(dl.Payload)))
	h.Set("Bridge-Payload-Sha256", hex.EncodeToString(sum[:]))
	room := maxPayload - int64(wireSize(msg)) - deadLetterSlack
	if int64(len(dl.Payload)) <= room {
		msg.Data = dl.Payload
		return msg
	}
	h.Set("Bridge-Payload-Truncated", "true")
	room -= int64(len("Bridge-Payload-Truncated: true\r\n"))
	msg.Data = dl.Payload[:max(room, 0)]
	return msg
}

// msgID keeps a Nats-Msg-Id short: one longer than 256 bytes becomes its hash.
func msgID(s string) string {
	if len(s) <= 256 {
		return oneLine(s)
	}
	sum := sha256.Sum256([]byte(s))
	return "deadletter/sha256-" + hex.EncodeToString(sum[:])
}

// maxHeaderValue bounds a header value of a dead letter.
const maxHeaderValue = 1000

// oneLine makes s a header value: no line breaks, at most maxHeaderValue bytes plus
// "...", cut at a character boundary (a cut never splits a UTF-8 sequence).
func oneLine(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '\r' || c == '\n' {
			b[i] = ' '
		}
	}
	if len(b) > maxHeaderValue {
		cut := maxHeaderValue
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		b = append(b[:cut], "..."...)
	}
	return string(b)
}
