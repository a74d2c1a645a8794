package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/sirupsen/logrus"
)

// distribution logs through logrus: a request's logger derives from the
// logrus standard logger (its internal dcontext package offers no other
// hook), copying the context value "instance.id" into a field. We put the
// server's *slog.Logger in that value and forward every entry to it from a
// logrus hook, so each Server logs to its own logger without package state
// of ours; the standard logger itself is silenced once per process.
var instanceIDKey any = "instance.id"

func withLogContext(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, instanceIDKey, log)
}

// withLogger puts the server's logger in every request's context.
func withLogger(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(withLogContext(r.Context(), log)))
	})
}

var installLogBridge = sync.OnceFunc(func() {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetFormatter(discardFormatter{})
	std.SetLevel(logrus.InfoLevel)
	std.AddHook(slogHook{})
})

// discardFormatter skips formatting: the hook has already forwarded the entry.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

type slogHook struct{}

func (slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (slogHook) Fire(e *logrus.Entry) error {
	log, ok := e.Data["instance.id"].(*slog.Logger)
	if !ok {
		return nil // not one of our servers: stay quiet
	}
	level := slogLevel(e)
	ctx := context.Background()
	if !log.Enabled(ctx, level) {
		return nil
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		switch k {
		case "instance.id", "go.version":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	attrs = append(attrs, slog.String("component", "registry"))
	for _, k := range keys {
		attrs = append(attrs, slog.String(k, fmt.Sprint(e.Data[k])))
	}
	log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}

// slogLevel maps logrus levels so that a quiet logger stays quiet: per
// request lines are Debug, and so are errors that are normal answers (a
// client probing for a blob or manifest it may push, an auth challenge);
// other client errors are Info; Error is kept for the registry's own faults.
func slogLevel(e *logrus.Entry) slog.Level {
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel:
		return slog.LevelError
	case logrus.ErrorLevel:
		if code, ok := e.Data["err.code"].(errcode.ErrorCode); ok {
			switch status := code.Descriptor().HTTPStatusCode; {
			case status == http.StatusNotFound, status == http.StatusUnauthorized,
				status == http.StatusMethodNotAllowed, status == http.StatusRequestedRangeNotSatisfiable:
				return slog.LevelDebug
			case status >= 400 && status < 500:
				return slog.LevelInfo // the client's mistake, not the registry's
			}
		}
		return slog.LevelError
	case logrus.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}
