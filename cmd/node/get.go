package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/chimalli/chimalli/gateway"
	"github.com/chimalli/chimalli/tofu"
	"github.com/spf13/cobra"
)

func defaultKnownHosts() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "chimalli", "known_hosts")
}

func newGetCmd() *cobra.Command {
	var (
		certFile, keyFile, knownHosts string
		include                       bool
		follow                        int
		timeout                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "get [--cert FILE --key FILE] URL",
		Short: "Fetch a Gemini URL (a client with TOFU known hosts)",
		Long: `Fetch a gemini:// URL and write the body of a success response to stdout.

Server certificates are trusted on first use: the first certificate a host:port
presents is recorded in the known-hosts file, and a later different certificate
(neither the same certificate nor the same public key) is refused. Other statuses
are printed to stderr and make the command exit 1. --cert/--key present a client
certificate (see "chimalli cert new").`,
		Example: `  chimalli get gemini://localhost/
  chimalli get --cert alice.crt --key alice.key gemini://localhost/admin/
  chimalli get -i gemini://localhost/missing`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := &gateway.Client{ReadTimeout: timeout, ConnectTimeout: timeout}
			if (certFile == "") != (keyFile == "") {
				return errors.New("--cert and --key go together")
			}
			if certFile != "" {
				pair, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return fmt.Errorf("client certificate: %w", err)
				}
				c.Certificate = &pair
			}
			if knownHosts == "" {
				return errors.New("no known-hosts file: set --known-hosts (no user config directory found)")
			}
			pins, err := tofu.OpenFileStore(knownHosts)
			if err != nil {
				return fmt.Errorf("known hosts: %w", err)
			}
			c.Pins = pins
			return fetch(cmd, c, args[0], include, follow, knownHosts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&certFile, "cert", "", "client certificate (PEM)")
	f.StringVar(&keyFile, "key", "", "client private key (PEM)")
	f.StringVar(&knownHosts, "known-hosts", defaultKnownHosts(), "TOFU known-hosts file")
	f.BoolVarP(&include, "include", "i", false, "print the response header line to stdout")
	f.IntVar(&follow, "follow", 5, "redirects to follow (0: none)")
	f.DurationVar(&timeout, "timeout", 15*time.Second, "connect and idle read timeout")
	return cmd
}

func fetch(cmd *cobra.Command, c *gateway.Client, target string, include bool, follow int, knownHosts string) error {
	for hops := 0; ; hops++ {
		resp, err := c.Do(cmd.Context(), target)
		if err != nil {
			var pm *gateway.PinMismatchError
			if errors.As(err, &pm) {
				return &exitError{code: 3, err: fmt.Errorf("%w\nThe server's key changed since it was first seen. If you trust the new key, delete its line from %s", err, knownHosts)}
			}
			return err
		}
		if resp.PinOutcome == tofu.FirstUse {
			fmt.Fprintf(cmd.ErrOrStderr(), "trusting %s on first use\n", resp.ServerIdentity.CertFingerprint())
		}
		if include {
			fmt.Fprintf(cmd.OutOrStdout(), "%d %s\r\n", resp.Status, resp.Meta)
		}
		switch resp.Status / 10 {
		case 2:
			defer resp.Body.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), resp.Body); err != nil {
				return fmt.Errorf("read body: %w", err)
			}
			return nil
		case 3:
			if hops >= follow {
				return &exitError{code: 1, err: fmt.Errorf("%d redirect to %s (not followed)", resp.Status, resp.Meta)}
			}
			base, err := url.Parse(target)
			if err != nil {
				return err
			}
			next, err := base.Parse(resp.Meta)
			if err != nil {
				return fmt.Errorf("redirect %q: %w", resp.Meta, err)
			}
			if next.Scheme != "gemini" {
				return &exitError{code: 1, err: fmt.Errorf("%d redirect to %s: not gemini://", resp.Status, next)}
			}
			target = next.String()
		default:
			return &exitError{code: 1, err: fmt.Errorf("%d %s", resp.Status, resp.Meta)}
		}
	}
}
