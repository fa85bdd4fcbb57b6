package container

import (
	"bytes"
	"log/slog"
)

// maxLine bounds one logged line; a longer one is logged in pieces of this size.
const maxLine = 16 << 10

// lineLogger is an io.Writer that logs each complete line written to it, at Info with the stream name.
// It holds at most maxLine bytes of an unfinished line. It is not safe for concurrent use: os/exec
// writes each stream from one goroutine.
type lineLogger struct {
	log    *slog.Logger
	stream string
	buf    []byte
}

func newLineLogger(log *slog.Logger, stream string) *lineLogger {
	return &lineLogger{log: log, stream: stream}
}

// Write logs the complete lines in p and keeps the rest for the next call. It never fails.
func (l *lineLogger) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLine - len(l.buf)
			if len(p) < room {
				l.buf = append(l.buf, p...)
				break
			}
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.emit()
			continue
		}
		if len(l.buf)+i > maxLine {
			room := maxLine - len(l.buf)
			l.buf = append(l.buf, p[:room]...)
			p = p[room:]
			l.emit()
			continue
		}
		l.buf = append(l.buf, p[:i]...)
		p = p[i+1:]
		l.emit()
	}
	return n, nil
}

// flush logs an unfinished last line, if any.
func (l *lineLogger) flush() {
	if len(l.buf) > 0 {
		l.emit()
	}
}

func (l *lineLogger) emit() {
	line := bytes.TrimSuffix(l.buf, []byte("\r"))
	l.log.Info("container source output", "stream", l.stream, "line", string(line))
	l.buf = l.buf[:0]
}
