package main

import (
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/inspect"
)

func newExplainCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "explain svc/NAME",
		Short: "Explain how a Service is served: its address, pool, announcing nodes and endpoints, and what to check",
		Example: `  kubectl ironlb explain svc/web
  kubectl ironlb explain -n shop service/checkout -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := serviceName(args[0])
			if err != nil {
				return err
			}
			ns, err := o.namespace()
			if err != nil {
				return err
			}
			c, err := o.reader()
			if err != nil {
				return err
			}
			// Read the Service first: a wrong name is the likeliest mistake.
			var svc corev1.Service
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
				if apierrors.IsNotFound(err) {
					return fmt.Errorf("service %s/%s not found", ns, name)
				}
				return fmt.Errorf("reading service %s/%s: %w", ns, name, err)
			}
			s, err := read(cmd.Context(), c, parts{config: true, announcements: true, nodes: true, servicesIn: ns})
			if err != nil {
				return err
			}
			e, err := inspect.Explain(s, ns, name)
			if err != nil {
				return err
			}
			return o.print(e, func(w io.Writer) error { return inspect.WriteExplanation(w, e) })
		},
	}
}

// serviceName reads the Service of explain's argument: NAME, svc/NAME,
// service/NAME or services/NAME.
func serviceName(arg string) (string, error) {
	kind, name, found := strings.Cut(arg, "/")
	if !found {
		kind, name = "svc", arg
	}
	switch strings.ToLower(kind) {
	case "svc", "service", "services":
	default:
		return "", fmt.Errorf("%q: explain takes a Service (NAME or svc/NAME), not a %s", arg, kind)
	}
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q: explain takes a Service (NAME or svc/NAME)", arg)
	}
	return name, nil
}
