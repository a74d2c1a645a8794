package install

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Facts are what the engine learns about a host before changing it; they
// live apart from the user's spec.
type Facts struct {
	Hostname  string
	OS        string // uname -s, e.g. Linux
	Arch      string // GOARCH spelling: amd64, arm64
	Time      time.Time
	RTT       time.Duration // of the facts command, bounds the clock reading's error
	FreeBytes int64         // available under the data root (or its nearest existing parent)
	Listening []int         // TCP ports in LISTEN state
	Missing   []string      // required tools not found
	Systemd   bool          // systemd runs as PID 1
	Installed bool          // an earlier run got past the host's first phase
	Touched   bool          // an earlier run recorded a step here
}

// requiredTools are what the engine itself runs on hosts.
var requiredTools = []string{"sh", "tar", "sha256sum", "mkdir", "mv", "rm", "cat", "df", "hostname", "uname", "date"}

// gatherFacts reads a host's facts with one command.
func gatherFacts(ctx context.Context, c *Conn, dataRoot string) (*Facts, error) {
	script := fmt.Sprintf(`
echo "hostname=$(hostname)"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "time=$(date +%%s)"
p=%[1]s; while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo "free=$(df -Pk "$p" | awk 'NR==2 {print $4}')"
for t in %[2]s; do command -v "$t" >/dev/null 2>&1 || echo "missing=$t"; done
for f in /proc/net/tcp /proc/net/tcp6; do [ -r $f ] && awk 'NR>1 && $4=="0A" {split($2,a,":"); print "port=" a[2]}' $f; done
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && echo systemd=1
[ -e %[1]s/state/init-host.done ] && echo installed=1
[ -d %[1]s/state ] && echo touched=1
true`, shellQuote(dataRoot), strings.Join(requiredTools, " "))
	start := time.Now()
	out, err := c.Output(ctx, script, time.Minute)
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	f := &Facts{RTT: time.Since(start)}
	var parseErr error
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "hostname":
			f.Hostname = v
		case "os":
			f.OS = v
		case "arch":
			f.Arch = goArch(v)
		case "time":
			sec, err := strconv.ParseInt(v, 10, 64)
			parseErr = errors.Join(parseErr, err)
			f.Time = time.Unix(sec, 0)
		case "free":
			kb, err := strconv.ParseInt(v, 10, 64)
			parseErr = errors.Join(parseErr, err)
			f.FreeBytes = kb * 1024
		case "missing":
			f.Missing = append(f.Missing, v)
		case "port":
			if p, err := strconv.ParseInt(v, 16, 32); err == nil && !slices.Contains(f.Listening, int(p)) {
				f.Listening = append(f.Listening, int(p))
			}
		case "systemd":
			f.Systemd = true
		case "installed":
			f.Installed = true
		case "touched":
			f.Touched = true
		}
	}
	if parseErr != nil {
		return nil, fmt.Errorf("gather facts: unexpected output: %w", parseErr)
	}
	f.Time = f.Time.Add(f.RTT / 2)
	return f, nil
}

// goArch maps uname -m to Go's architecture names used in bundle platforms.
func goArch(m string) string {
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	}
	return m
}
