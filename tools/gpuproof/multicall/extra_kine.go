//go:build palplat_kine

package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	kine "github.com/k3s-io/kine/pkg/app"
)

func init() {
	programs["kine"] = func(args []string) int {
		if err := kine.New().Run(append([]string{"kine"}, args...)); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "kine:", err)
			return 1
		}
		return 0
	}
}
