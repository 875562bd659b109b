package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/chimalli/chimalli/ops/admin"
	"github.com/chimalli/chimalli/raftstore"
	"github.com/chimalli/chimalli/tofu"
	"github.com/spf13/cobra"
)

func newClusterSnapshotCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up and restore the cluster's state",
		Long: `Save the cluster's replicated state (bans, access rules, TOFU pins, session-ticket
and audit keys) to a file, or replace the cluster's state with a saved one, through a
node on this machine, over its admin socket. Any node will do.

A backup holds the cluster's session-ticket keys and audit hash keys: it is a
secret, written 0600. See "Back up and restore" in docs/operations.md.`,
	}
	cmd.AddCommand(newSnapshotSaveCmd(), newSnapshotRestoreCmd())
	return cmd
}

func newSnapshotSaveCmd() *cobra.Command {
	af := adminFlags{timeout: time.Minute}
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save the cluster's state to FILE (- for standard output)",
		Long: `Save the cluster's state to FILE: every change committed before the command is in
it (the node first catches up with the leader). The file is written 0600 to a
temporary file next to FILE, synced, checked (length and SHA-256) and renamed into
place, so FILE is either the whole backup or untouched. With -, the backup goes to
standard output and the summary to standard error.`,
		Example: `  chimalli cluster snapshot save /var/backups/chimalli/state-$(date +%F).jsonl
  chimalli cluster snapshot save - | age -r "$RECIPIENT" > state.jsonl.age`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return af.call(cmd, func(ctx context.Context, socket string) error {
				if args[0] == "-" {
					bw := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
					h, err := admin.SaveSnapshot(ctx, socket, bw)
					if ferr := bw.Flush(); err == nil && ferr != nil {
						err = fmt.Errorf("snapshot save: %w", ferr)
					}
					if err != nil {
						return err
					}
					printSaved(cmd.ErrOrStderr(), "standard output", h)
					return nil
				}
				h, err := saveBackupFile(ctx, socket, args[0])
				if err != nil {
					return err
				}
				printSaved(cmd.OutOrStdout(), args[0]+" (0600)", h)
				return nil
			})
		},
	}
	af.bind(cmd.Flags())
	return cmd
}

// saveBackupFile saves a backup from the node behind socket to path:
// a 0600 temporary file in path's directory, synced, then renamed over
// path. On an error path is untouched and the temporary file removed.
func saveBackupFile(ctx context.Context, socket, path string) (h raftstore.BackupHeader, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp") // 0600
	if err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if h, err = admin.SaveSnapshot(ctx, socket, bw); err != nil {
		return h, err
	}
	if err := bw.Flush(); err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return h, fmt.Errorf("snapshot save: %w", err)
	}
	_ = tofu.SyncDir(dir) // make the rename durable (best effort: the file is in place)
	return h, nil
}

func printSaved(w io.Writer, where string, h raftstore.BackupHeader) {
	fmt.Fprintf(w, "saved the state at index %d (term %d) from node %s to %s\n", h.Index, h.Term, h.Node, where)
	fmt.Fprintf(w, "  %s\n", backupSummary(h))
	fmt.Fprintln(w, "The backup holds the cluster's session-ticket and audit keys: keep it secret.")
}

func backupSummary(h raftstore.BackupHeader) string {
	cluster := h.Cluster
	if cluster == "" {
		cluster = "(unnamed)"
	}
	return fmt.Sprintf("cluster %s, saved %s: %d bans, %d rules, %d pins, %d ticket keys, %d audit keys; state hash %s",
		cluster, h.Time.Format(time.RFC3339), h.Bans, h.Rules, h.Pins, h.Tickets, h.Audit, h.SHA256)
}

// errNeedForce refuses a restore the operator has not confirmed.
var errNeedForce = errors.New("snapshot restore: this replaces the cluster's state on every node; pass --force to do it (nothing was changed)")

func newSnapshotRestoreCmd() *cobra.Command {
	var force bool
	af := adminFlags{timeout: time.Minute}
	cmd := &cobra.Command{
		Use:   "restore FILE --force",
		Short: "Replace the cluster's state with a saved one",
		Long: `Replace the cluster's state, on every node, with the one FILE holds (- for standard
input). The file is checked whole first (format version, length, SHA-256, every
line), here and again on the node: a bad file changes nothing. The command shows
what the file holds and what it replaces; without --force it stops there.

The node sends the state to the leader, which installs it as a Raft snapshot;
every follower then installs the same snapshot. Every change committed after the
backup was saved is lost (bans added since are gone, bans lifted since are back),
and so are the session-ticket and audit keys added since: the backup's keys return.`,
		Example: `  chimalli cluster snapshot restore /var/backups/chimalli/state-2026-11-30.jsonl
  chimalli cluster snapshot restore /var/backups/chimalli/state-2026-11-30.jsonl --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readBackupArg(cmd, args[0])
			if err != nil {
				return err
			}
			h, _, err := raftstore.ReadBackup(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("snapshot restore: %s: %w (nothing was changed)", args[0], err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "backup  index %d (term %d) from node %s\n        %s\n", h.Index, h.Term, h.Node, backupSummary(h))
			return af.call(cmd, func(ctx context.Context, socket string) error {
				st, err := admin.ClusterStatus(ctx, socket)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "replaces index %d on node %s: %d bans, %d rules, %d pins; state hash %s\n",
					st.AppliedIndex, st.NodeID, st.Bans, st.Rules, st.Pins, st.StateHash)
				if !force {
					return errNeedForce
				}
				res, err := admin.RestoreSnapshot(ctx, socket, bytes.NewReader(data))
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "restored through leader %s: the cluster's state is the backup's (index %d, state hash %s),\n", res.Leader, res.Index, res.StateHash)
				fmt.Fprintf(w, "  the Raft snapshot at index %d, which every follower installs from the leader\n", res.RaftIndex)
				return nil
			})
		},
	}
	af.bind(cmd.Flags())
	cmd.Flags().BoolVar(&force, "force", false, "replace the cluster's state (without it, the command only checks FILE and shows what it would replace)")
	return cmd
}

// readBackupArg reads the backup named by arg: a file, or standard input
// for -.
func readBackupArg(cmd *cobra.Command, arg string) ([]byte, error) {
	var data []byte
	var err error
	if arg == "-" {
		data, err = io.ReadAll(cmd.InOrStdin())
	} else {
		data, err = os.ReadFile(arg)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot restore: %w", err)
	}
	return data, nil
}
