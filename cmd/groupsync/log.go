package main

import (
	"io"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds the process's one root logger: JSON lines, or a console
// writer for people (dev's default). Packages receive it through their Config.
func newLogger(s *settings, w io.Writer, defaultFormat string) (zerolog.Logger, error) {
	level, err := s.oneOf("log-level", "debug", "info", "warn", "error")
	if err != nil {
		return zerolog.Nop(), err
	}
	format := defaultFormat
	if s.flagSet("log-format") || s.getenv(options["log-format"].env()) != "" {
		if format, err = s.oneOf("log-format", "json", "console"); err != nil {
			return zerolog.Nop(), err
		}
	}
	lvl, _ := zerolog.ParseLevel(level)
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
