// Command agent is the small program the install engine places on cluster
// nodes: it receives, forwards and unpacks the rootfs layers, and nothing
// else, so it costs a few MB per host instead of the whole installer.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealpack/sealpack/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	args := os.Args[1:]
	// The engine runs "PROGRAM agent CMD ..." on every host, whichever
	// program it placed there: accept the same command lines.
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	code := agent.Main(ctx, &agent.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, args)
	stop()
	os.Exit(code)
}
