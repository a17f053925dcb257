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
