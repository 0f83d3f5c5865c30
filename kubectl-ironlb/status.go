package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/inspect"
)

func newStatusCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the pools' use and validity, what every speaker announces, and the BGP sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.reader()
			if err != nil {
				return err
			}
			s, err := read(cmd.Context(), c, parts{config: true, announcements: true, nodes: true})
			if err != nil {
				return err
			}
			r := inspect.Status(s)
			return o.print(r, func(w io.Writer) error { return inspect.WriteStatus(w, r) })
		},
	}
}
