package mqtt

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// pahoLogger routes a paho logger to zerolog at the given level.
type pahoLogger struct {
	log    zerolog.Logger
	level  zerolog.Level
	source string
}

func (l pahoLogger) Println(v ...any) {
	if e := l.log.WithLevel(l.level); e.Enabled() {
		e.Str("source", l.source).Msg(strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

func (l pahoLogger) Printf(format string, v ...any) {
	if e := l.log.WithLevel(l.level); e.Enabled() {
		e.Str("source", l.source).Msg(strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

// reasonText names the MQTT v5 reason codes of CONNACK, SUBACK and DISCONNECT
// that an operator is likely to see, so a log line says what went wrong.
func reasonText(code byte) string {
	switch code {
	case 0x00:
		return "success / granted QoS 0"
	case 0x01:
		return "granted QoS 1"
	case 0x02:
		return "granted QoS 2"
	case 0x04:
		return "disconnect with will message"
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x83:
		return "implementation specific error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8B:
		return "server shutting down"
	case 0x8C:
		return "bad authentication method"
	case 0x8D:
		return "keep alive timeout"
	case 0x8E:
		return "session taken over (another client connected with the same client id)"
	case 0x8F:
		return "topic filter invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x9C:
		return "use another server"
	case 0x9D:
		return "server moved"
	case 0x9E:
		return "shared subscriptions not supported"
	case 0x9F:
		return "connection rate exceeded"
	case 0xA1:
		return "subscription identifiers not supported"
	case 0xA2:
		return "wildcard subscriptions not supported"
	default:
		return fmt.Sprintf("reason code 0x%02X", code)
	}
}
