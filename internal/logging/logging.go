// Package logging builds the bridge's logger: zerolog, JSON lines (the default) or the
// console format, with a timestamp on every line.
//
// Conventions for the code that logs through it:
//   - a duration is written as a Go duration string ("24h0m0s", "1.25s"), in both formats:
//     .Stringer(key, d), rounded where it is measured or jittered (d.Round(time.Millisecond)),
//     never zerolog's .Dur, which writes a bare number of milliseconds (a test keeps it out);
//   - the console format is coloured only on a terminal, and never with NO_COLOR set
//     (https://no-color.org), so a redirected log holds no escape codes.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// New returns a logger writing to w in format "json" or "console" at level (a zerolog level
// name; anything else is info: the configuration checks it before).
func New(w io.Writer, format, level string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !Colour(w)}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// Colour reports whether console output to w may be coloured: w is a terminal and the
// environment variable NO_COLOR is empty or unset.
func Colour(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

// isTerminal reports whether w is a terminal (a variable for the tests, which have none).
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
