package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/sealpack/sealpack/apiproxy"
)

func (c APIProxy) run(ctx context.Context, env *Env) error {
	if c.Listen == "" {
		return fmt.Errorf("api-proxy: need --listen")
	}
	p, err := apiproxy.Listen(apiproxy.Options{
		Listen: c.Listen, Backends: c.Backends, BackendsFile: c.BackendsFile, Interval: c.Interval,
		HealthPath: c.HealthPath,
		// One line per change of a backend's health: the service's journal
		// says when a master went away and came back.
		Logf: func(format string, args ...any) {
			fmt.Fprintf(env.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339)}, args...)...)
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "api-proxy: listening on %s\n", p.Addr())
	return p.Serve(ctx)
}
