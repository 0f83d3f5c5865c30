package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/ironlb/ironlb/internal/buildinfo"
)

// versionInfo is what `version` prints: the build, as the controller and
// the speaker report it in ironlb_build_info.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"goVersion"`
}

func newVersionCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the plugin's version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			b := buildinfo.Get()
			v := versionInfo{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion}
			return o.print(v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "kubectl-ironlb %s (revision %s, %s)\n", v.Version, v.Revision, v.GoVersion)
				return err
			})
		},
	}
}
