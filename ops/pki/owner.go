package pki

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

// GrantNodes hands each node's certificate and key to node, the user the
// node processes run as when that user is not the one who keeps the
// directory (a container's unprivileged user, with the directory
// bind-mounted from the host). The directory keeps its owner, gets node's
// group and mode 0710: a node can open its files by name but not list the
// others. Every other file (the authority's and the admin's) goes to the
// directory's owner, so the operator who made the directory can use the
// admin identity and keeps the authority's key. Modes are left as written
// (keys 0600), so a node reads only its own key.
//
// Changing a file's owner needs privilege (CAP_CHOWN): GrantNodes is run
// as root by an init step, such as the compose file's init service. It is
// idempotent and touches only the layout's files.
func (l *Layout) GrantNodes(node Owner) error {
	fi, err := os.Stat(l.Dir)
	if err != nil {
		return fmt.Errorf("grant node files: %w", err)
	}
	keeper, ok := ownerOf(fi)
	if !ok {
		return errors.New("grant node files: file owners are not available on this system")
	}
	if keeper.GID == node.GID && keeper.GID != 0 {
		// Granted before: the directory's group is the node's now, and
		// the keeper's group is the one the authority's key was given.
		if fi, err := os.Lstat(l.CAKey()); err == nil {
			if o, ok := ownerOf(fi); ok {
				keeper.GID = o.GID
			}
		}
	}
	nodeFiles := map[string]bool{}
	for _, id := range l.Nodes {
		f := l.Node(id)
		nodeFiles[f.Cert], nodeFiles[f.Key] = true, true
	}
	for _, name := range l.fileNames() {
		path := filepath.Join(l.Dir, name)
		o := keeper
		if nodeFiles[path] {
			o = node
		}
		if err := os.Lchown(path, o.UID, o.GID); err != nil {
			return fmt.Errorf("grant node files: %w", err)
		}
	}
	if err := os.Lchown(l.Dir, keeper.UID, node.GID); err != nil {
		return fmt.Errorf("grant node files: %w", err)
	}
	if err := os.Chmod(l.Dir, 0o710); err != nil {
		return fmt.Errorf("grant node files: %w", err)
	}
	return nil
}

// ownerOf returns the owner of the file fi describes; false where the
// system gives none.
func ownerOf(fi os.FileInfo) (Owner, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Owner{}, false
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, true
}

// ParseOwner reads "UID:GID", two numbers (as in a container's user).
func ParseOwner(s string) (Owner, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, uerr := strconv.Atoi(u)
	gid, gerr := strconv.Atoi(g)
	if !ok || uerr != nil || gerr != nil || uid < 0 || gid < 0 {
		return Owner{}, fmt.Errorf("%q: want UID:GID, two non-negative numbers", s)
	}
	return Owner{UID: uid, GID: gid}, nil
}
