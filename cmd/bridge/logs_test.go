package main

import (
	"encoding/json"
	"strings"
)

// logEntry is one JSON log line of the bridge.
type logEntry struct {
	Level, Component, Message, Error string
	Attempt                          int
}

// logEntries returns the JSON lines of out whose message is msg (any message if msg is
// "") and whose component is component (any if ""), and whose error contains errPart.
func logEntries(out, component, msg, errPart string) []logEntry {
	var got []logEntry
	for _, line := range strings.Split(out, "\n") {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if (msg == "" || e.Message == msg) && (component == "" || e.Component == component) &&
			strings.Contains(strings.ToLower(e.Error), strings.ToLower(errPart)) {
			got = append(got, e)
		}
	}
	return got
}

// warnings returns the JSON log lines of out at level warn or above: a clean start and
// stop has none.
func warnings(out string) []string {
	var got []string
	for _, line := range strings.Split(out, "\n") {
		var e logEntry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Level {
		case "warn", "error", "fatal", "panic":
			got = append(got, line)
		}
	}
	return got
}
