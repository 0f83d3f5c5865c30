package membership

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// newStdLogger returns a *log.Logger, the only kind memberlist accepts, whose
// lines go to l at the level their "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]"
// prefix names.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(logBridge{l}, "", 0)
}

// logBridge receives one memberlist log line per Write (log.Logger
// serialises its calls to Write).
type logBridge struct{ log *slog.Logger }

func (b logBridge) Write(p []byte) (int, error) {
	level, msg := parseLogLine(p)
	ctx := context.Background()
	if b.log.Enabled(ctx, level) {
		b.log.Log(ctx, level, msg)
	}
	return len(p), nil
}

// parseLogLine splits "[WARN] memberlist: text\n" into a level and
// "memberlist: text". A line without a known prefix is logged at Info.
func parseLogLine(p []byte) (slog.Level, string) {
	p = bytes.TrimRight(p, "\r\n")
	if len(p) == 0 || p[0] != '[' {
		return slog.LevelInfo, string(p)
	}
	end := bytes.IndexByte(p, ']')
	if end < 0 {
		return slog.LevelInfo, string(p)
	}
	var level slog.Level
	switch string(p[1:end]) {
	case "TRACE", "DEBUG":
		level = slog.LevelDebug
	case "INFO":
		level = slog.LevelInfo
	case "WARN":
		level = slog.LevelWarn
	case "ERR", "ERROR":
		level = slog.LevelError
	default:
		return slog.LevelInfo, string(p)
	}
	return level, string(bytes.TrimLeft(p[end+1:], " "))
}
