package main

import (
	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
)

func runCobra(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
