// Package mqtttest starts real MQTT brokers for tests: an embedded mochi-mqtt
// broker, and the machine's mosquitto binary with a config of its own (on a
// free port, never the system broker). It also publishes with QoS 1 and
// generates a throw-away CA with server and client certificates.
package mqtttest
