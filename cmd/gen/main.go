// Command gen builds a self-contained cluster installer from a Kubefile.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealpack/sealpack/generator/gencmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := gencmd.Main(ctx, &gencmd.IO{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}
