// pause is the pod sandbox process: it holds the pod's namespaces, reaps
// orphaned children when it is PID 1 of a shared PID namespace, and exits on
// SIGINT or SIGTERM. A Go port of Kubernetes' build/pause/linux/pause.c, so
// the image needs no C toolchain; built with CGO_ENABLED=0 it runs FROM scratch.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("pause.go (sealpack)\n")
		return
	}
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
