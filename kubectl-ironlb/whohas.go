package main

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/inspect"
)

func newWhoHasCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "who-has ADDRESS",
		Short:   "Show the Services holding an address, its pool and the nodes announcing it",
		Example: "  kubectl ironlb who-has 203.0.113.10\n  kubectl ironlb who-has 2001:db8::10 -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := netip.ParseAddr(args[0])
			if err != nil || a.Zone() != "" {
				return fmt.Errorf("%q is not an IP address", args[0])
			}
			c, err := o.reader()
			if err != nil {
				return err
			}
			s, err := read(cmd.Context(), c, parts{announcements: true, allServices: true})
			if err != nil {
				return err
			}
			r := inspect.WhoHas(s, a)
			return o.print(r, func(w io.Writer) error { return inspect.WriteWhoHas(w, r) })
		},
	}
}
