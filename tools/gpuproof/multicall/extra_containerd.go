//go:build palplat_containerd

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/containerd/containerd/v2/cmd/containerd/command"
	_ "github.com/containerd/containerd/v2/cmd/containerd/builtins"
	ctr "github.com/containerd/containerd/v2/cmd/ctr/app"
)

func init() {
	programs["containerd"] = func(args []string) int {
		if err := command.App().Run(context.Background(), append([]string{"containerd"}, args...)); err != nil {
			fmt.Fprintln(os.Stderr, "containerd:", err)
			return 1
		}
		return 0
	}
	programs["ctr"] = func(args []string) int {
		if err := ctr.New().Run(context.Background(), append([]string{"ctr"}, args...)); err != nil {
			fmt.Fprintln(os.Stderr, "ctr:", err)
			return 1
		}
		return 0
	}
}
