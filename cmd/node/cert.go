package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/chimalli/chimalli/tofu"
	"github.com/spf13/cobra"
)

func newCertCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage certificates",
	}
	cmd.AddCommand(newCertNewCmd())
	return cmd
}

func newCertNewCmd() *cobra.Command {
	var (
		cn, out, name string
		days          int
		dnsNames      []string
		overwrite     bool
	)
	cmd := &cobra.Command{
		Use:   "new --cn NAME [--days N] --out DIR",
		Short: "Create a self-signed ECDSA P-256 certificate and key",
		Long: `Create a self-signed certificate and its private key, ECDSA P-256.

The files are DIR/NAME.crt (0644) and DIR/NAME.key (0600), where NAME defaults to
the common name. Use it as a Gemini client identity (chimalli get --cert/--key,
or any Gemini client), or as a server certificate with --dns.

The certificate's fingerprints are printed: put the sha256: one in a route's
allowed_fingerprints to grant this identity access.`,
		Example: `  chimalli cert new --cn alice --out ~/.config/chimalli/identities
  chimalli cert new --cn example.org --dns example.org --days 3650 --out /etc/chimalli`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cn == "" {
				return errors.New("--cn is required")
			}
			if out == "" {
				return errors.New("--out is required")
			}
			if name == "" {
				name = cn
			}
			certPEM, keyPEM, err := tofu.GenerateCert(tofu.CertRequest{CommonName: cn, DNSNames: dnsNames, Days: days})
			if err != nil {
				return err
			}
			certPath, keyPath, err := tofu.WriteKeyPair(out, name, certPEM, keyPEM, overwrite)
			if err != nil {
				return err
			}
			block, _ := pem.Decode(certPEM)
			leaf, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "certificate: %s\nkey:         %s\n", certPath, keyPath)
			fmt.Fprintf(w, "fingerprint: %s\nspki:        %s\n", tofu.CertFingerprint(leaf.Raw), tofu.SPKIFingerprint(leaf))
			fmt.Fprintf(w, "valid until: %s\n", leaf.NotAfter.UTC().Format("2006-01-02"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cn, "cn", "", "common name of the identity (required)")
	f.IntVar(&days, "days", 365, "validity in days")
	f.StringVar(&out, "out", "", "directory to write NAME.crt and NAME.key into (required)")
	f.StringVar(&name, "name", "", "file name without extension (default: the common name)")
	f.StringSliceVar(&dnsNames, "dns", nil, "DNS names for a server certificate (repeatable)")
	f.BoolVar(&overwrite, "force", false, "overwrite existing files")
	return cmd
}
