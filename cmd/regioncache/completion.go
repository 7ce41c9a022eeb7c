package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/cobra"
)

func init() { register("completion", newCompletion) }

func newCompletion(e *env) *cobra.Command {
	shells := []string{"bash", "zsh", "fish", "powershell"}
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "print a shell completion script",
		Long: `completion prints the script that makes a shell complete regioncache's
commands, flags and backend names. For example, for bash:

  source <(regioncache completion bash)

or save it where your shell loads completions from
(e.g. /etc/bash_completion.d/regioncache). -json wraps the script in a JSON
object {"shell", "script"}.`,
		ValidArgs: shells,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want one shell: bash, zsh, fish or powershell")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			var b bytes.Buffer
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(&b, true)
			case "zsh":
				err = root.GenZshCompletion(&b)
			case "fish":
				err = root.GenFishCompletion(&b, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(&b)
			default:
				return usagef("unknown shell %q: want bash, zsh, fish or powershell", args[0])
			}
			if err != nil {
				return err
			}
			if jsonOut(cmd) {
				return writeJSON(e.stdout, map[string]string{"shell": args[0], "script": b.String()})
			}
			_, err = fmt.Fprint(e.stdout, b.String())
			return err
		},
	}
}
