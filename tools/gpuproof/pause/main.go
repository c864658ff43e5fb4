// pause: the pod sandbox's process for the GPU proof kit and the test bed's node. It
// holds the pod's namespaces, reaps zombies (it is PID 1 in a shared PID namespace) and
// exits on SIGINT/SIGTERM. palplat's own small program (registry.k8s.io/pause is C).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
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
