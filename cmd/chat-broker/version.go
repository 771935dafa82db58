package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, if set at build time with -ldflags "-X main.version=v1.2.3"
// (deploy/Dockerfile does), is the version printed; otherwise the
// module version from the build info is.
var version string

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version and the source revision",
		Long: `Print chat-broker's version on one line. The version is the module's: what
"go install …/cmd/chat-broker@v1.2.3" names, or the pseudo-version "go build" in a
checkout derives from its commit (+dirty with uncommitted changes), followed there
by the revision, its time and whether the checkout had uncommitted changes. A
version set at build time with -ldflags "-X main.version=…" (the image build does)
is printed as given.`,
		Example: `  chat-broker version
  chat-broker --version`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprint(cmd.OutOrStdout(), versionText())
			return nil
		},
	}
}

// versionText is what version and --version print.
func versionText() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, info)
}

// formatVersion is versionText for a given -X version and build info
// (nil when the binary has none). It is one line, which scripts (and
// deploy's image test) read: "chat-broker VERSION", then the source
// revision when the build info has one. A version set with -X is the
// builder's word and printed alone: an image build has no checkout to
// read a revision from, and may put one in VERSION.
func formatVersion(ldVersion string, info *debug.BuildInfo) string {
	if ldVersion != "" {
		return "chat-broker " + ldVersion + "\n"
	}
	v := ""
	if info != nil {
		v = info.Main.Version
	}
	if v == "" || v == "(devel)" {
		v = "(devel: built by go run, go test or go build without a module version)"
	}
	line := "chat-broker " + v
	var rev, at string
	modified := false
	if info != nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev != "" {
		line += " (revision " + rev
		if at != "" {
			line += ", " + at
		}
		if modified {
			line += ", with uncommitted changes"
		}
		line += ")"
	}
	return line + "\n"
}
