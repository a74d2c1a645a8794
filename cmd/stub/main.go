// Command stub is the installer program that gen puts at the front of every
// bundle; built per architecture into assets/stubs by the Makefile.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sealpack/sealpack/bundle"
	"github.com/sealpack/sealpack/stub"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := stub.Main(ctx, &stub.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Open: bundle.OpenSelf}, os.Args[1:])
	stop()
	os.Exit(code)
}
