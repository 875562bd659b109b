// Command chimalli runs a Chimalli security gateway node and the tools
// around it: a Gemini client with TOFU (get), certificate generation
// (cert new), a health probe (health) and a load generator (bench).
//
// This is the only package that knows every other package: it turns the
// operator's configuration into components and wires them together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chimalli:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "chimalli",
		Short: "Chimalli: a security gateway for Gemini",
		Long: `Chimalli is a security gateway for the Gemini protocol. A node terminates TLS,
enforces IP access lists, rate limits, request limits, path canonicalisation and
client-certificate rules with TOFU pins, then serves a document root or proxies
to an upstream Gemini server.

Start a node on the built-in defaults (127.0.0.1:1965, a generated certificate,
a welcome capsule):

  chimalli run

and fetch its front page:

  chimalli get gemini://localhost/`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRunCmd(), newGetCmd(), newCertCmd(), newVersionCmd(), newHealthCmd(), newBanCmd(), newBenchCmd())
	root.AddCommand(newClusterCmd())
	root.AddCommand(newRuleCmd(), newTrustCmd())
	root.AddCommand(newAuditCmd(), newEventsCmd())
	return root
}
