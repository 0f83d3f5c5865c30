package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

// options are the flags every subcommand shares.
type options struct {
	streams genericiooptions.IOStreams
	kube    *genericclioptions.ConfigFlags
	// output is "" (text), "json" or "yaml".
	output string
}

func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, kube: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:   "kubectl-ironlb",
		Short: "Inspect ironlb, the LoadBalancer provider for bare-metal clusters",
		Long: `Inspect ironlb: the state of its address pools, speakers and BGP sessions,
why a Service has no address or is not reachable, who holds an address, and
convert a MetalLB configuration to ironlb's.`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl ironlb",
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch o.output {
			case "", "text", "json", "yaml":
				return nil
			}
			return fmt.Errorf("--output %q: must be json or yaml (or empty for text)", o.output)
		},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.kube.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "", "output format: json or yaml; plain text when empty")
	root.AddCommand(newStatusCommand(o), newExplainCommand(o), newWhoHasCommand(o), newMigrateCommand(o), newVersionCommand(o))
	return root
}

// print writes v as JSON or YAML, or as text with writeText.
func (o *options) print(v any, writeText func(io.Writer) error) error {
	switch o.output {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = o.streams.Out.Write(append(b, '\n'))
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = o.streams.Out.Write(b)
		return err
	}
	return writeText(o.streams.Out)
}
