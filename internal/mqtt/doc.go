// Package mqtt is the bridge's MQTT v5 subscriber.
//
// It keeps one persistent session (fixed client id, clean start off, session
// expiry) subscribed with QoS 1 and hands every message to a Handler together
// with a manual acknowledgement. It knows nothing of what the payload means.
//
// At-least-once rests on the broker: a message is acknowledged (PUBACK) only
// when the caller calls Message.Ack, so whatever was not acknowledged when the
// process stops or the connection drops is delivered again. ReceiveMaximum
// bounds how many unacknowledged messages the broker sends at once, which is
// the backpressure of the whole bridge.
package mqtt
