package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// logHook is for hooking Panic in web application
type logHook struct {
	LevelsParam []string
	Mail        *mailer
}

// Fire forwards an error to LogHook
func (hook *logHook) Fire(entry *logrus.Entry) error {
	host, _, ok := strings.Cut(hook.Mail.Addr, ":")
	if !ok || host == "" {
		return errors.New("invalid Mail Address")
	}
	subject := fmt.Sprintf("[%s] %s: %s", entry.Level, host, entry.Message)

	// The body text/template used to render, written with fmt: text/template makes the
	// linker keep every exported method of every type stored in an interface.
	b := bytes.NewBuffer(make([]byte, 0))
	fmt.Fprintf(b, "\n\t%s\n\n\t", entry.Message)
	for _, key := range slices.Sorted(maps.Keys(entry.Data)) {
		value := entry.Data[key]
		if value == nil {
			value = "<no value>" // as text/template prints it
		}
		fmt.Fprintf(b, "\n\t%s: %v\n\t", key, value)
	}
	b.WriteString("\n\t")
	body := b.String()

	return hook.Mail.sendMail(subject, body)
}

// Levels contains hook levels to be catched
func (hook *logHook) Levels() []logrus.Level {
	levels := make([]logrus.Level, 0, len(hook.LevelsParam))
	for _, v := range hook.LevelsParam {
		lv, _ := logrus.ParseLevel(v)
		levels = append(levels, lv)
	}
	return levels
}
