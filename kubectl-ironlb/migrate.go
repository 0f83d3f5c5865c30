package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ironlb/ironlb/internal/migrate"
)

func newMigrateCommand(o *options) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "migrate -f FILE",
		Short: "Convert MetalLB configuration objects to ironlb's",
		Long: `Convert MetalLB configuration objects (IPAddressPool, L2Advertisement,
BGPAdvertisement, BGPPeer, ...) to ironlb's. The ironlb objects go to standard
output as YAML (or a JSON List with -o json), ready for kubectl apply; what
could not be carried over exactly, and the password Secrets to copy, go to
standard error. Nothing is read from or written to the cluster.`,
		Example: `  kubectl get ipaddresspools,l2advertisements,bgpadvertisements,bgppeers -n metallb-system -o yaml \
    | kubectl ironlb migrate -f - > ironlb.yaml`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if file == "" {
				return errors.New("-f FILE is required (-f - reads standard input)")
			}
			in, err := readInput(file, o.streams.In)
			if err != nil {
				return err
			}
			res, err := migrate.Convert(in)
			if err != nil {
				return fmt.Errorf("converting %s: %w", inputName(file), err)
			}
			if err := writeConversion(o, res); err != nil {
				return err
			}
			return writeMigrateNotes(o.streams.ErrOut, res)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of MetalLB YAML documents; - for standard input")
	return cmd
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return b, nil
}

func inputName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// writeConversion prints the objects: YAML documents, or with -o json one
// List as kubectl prints it.
func writeConversion(o *options, res *migrate.Result) error {
	switch o.output {
	case "", "text", "yaml":
		return res.WriteYAML(o.streams.Out)
	}
	items := make([]map[string]any, 0, len(res.Objects))
	for _, obj := range res.Objects {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("%s %s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName(), err)
		}
		delete(m, "status")
		if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		items = append(items, m)
	}
	b, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
	if err != nil {
		return err
	}
	_, err = o.streams.Out.Write(append(b, '\n'))
	return err
}

// writeMigrateNotes prints the warnings and the Secrets to copy.
func writeMigrateNotes(w io.Writer, res *migrate.Result) error {
	for _, warn := range res.Warnings {
		if _, err := fmt.Fprintf(w, "warning: %s\n", warn); err != nil {
			return err
		}
	}
	for _, s := range res.Secrets {
		// A fresh Secret with only the password: a copy of the whole object
		// would carry the old one's uid and resourceVersion, which a create
		// refuses.
		if _, err := fmt.Fprintf(w, "copy Secret %[1]s/%[2]s to namespace %[3]s (used by %[4]s): kubectl -n %[3]s create secret generic %[2]s --from-literal=password=\"$(kubectl -n %[1]s get secret %[2]s -o jsonpath='{.data.password}' | base64 -d)\"\n",
			s.Namespace, s.Name, migrate.SecretNamespace, s.UsedBy); err != nil {
			return err
		}
	}
	return nil
}
