package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eventgate/eventgate/gateway/resources"
)

func newValidateCmd() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "validate -f PATH... [PATH...]",
		Short: "Check manifests and print what each resource resolves to",
		Long: `validate decodes, defaults and validates the manifests, then prints one line per resource: a
channel's ingress address, a subscription's subscriber URL (and reply and dead letter), a
webhook source's endpoint, and "not managed" for kinds eventgate does not run. It exits 1 when any
resource is invalid; each error names the file, the document and the field.
Configuration (--config, EVENTGATE_*, --set) gives the default channel kind, the address book and
the ingress URL used in what is printed.`,
		Example: `  eventgate validate -f testdata/knative-eventing-demo
  eventgate validate channel.yaml subscription.yaml --set addressBook.default/knative-eventing-demo=http://127.0.0.1:8081`,
		RunE: func(cmd *cobra.Command, args []string) error {
			paths := append(append([]string(nil), f.resources...), args...)
			if len(paths) == 0 {
				return &exitError{code: 2, err: errors.New("validate: give manifests with -f PATH (file or directory)")}
			}
			cfg, _, err := f.load()
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			set, err := resources.Load(paths, resources.Options{DefaultProvisioner: cfg.Channels.DefaultProvisioner})
			if err == nil {
				err = set.Validate()
			}
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("invalid manifests:\n%w", err)}
			}
			r := &resources.Resolver{AddressBook: cfg.AddressBook, IngressURL: cfg.IngressURL()}
			out := cmd.OutOrStdout()
			for _, line := range resources.Describe(set, r) {
				fmt.Fprintln(out, line)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
