// Command kubectl-ironlb is ironlb's kubectl plugin: installed on the
// PATH, it runs as `kubectl ironlb`. It reads the cluster with the
// caller's kubeconfig and answers an operator's questions: the state of
// pools, speakers and BGP sessions (status), why a Service has no address
// or no node announcing it (explain), who holds an address (who-has); it
// also converts a MetalLB configuration to ironlb's (migrate).
//
// The answers are worked out by internal/inspect from what this command
// reads; this package only parses flags, reads and prints.
package main

import (
	"fmt"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func main() {
	// controller-runtime complains on stderr when nothing took its log.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(run(os.Args[1:], genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}))
}

// run runs the command line and returns the exit code: 0 on success, 1
// when the command failed (the error printed on ErrOut).
func run(args []string, streams genericiooptions.IOStreams) int {
	cmd := newRootCommand(streams)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
		return 1
	}
	return 0
}
