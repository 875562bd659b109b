package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// File names in a cluster directory, besides <id>.crt and <id>.key per node.
const (
	CACertFile    = "ca.crt"
	CAKeyFile     = "ca.key"
	AdminCertFile = AdminName + ".crt"
	AdminKeyFile  = AdminName + ".key"
)

// reservedNames cannot be node ids: their files are the authority's and
// the admin's.
var reservedNames = []string{"ca", AdminName}

// Files are the paths of one identity's credentials: the cluster CA
// certificate, the identity's certificate and its key.
type Files struct {
	CA, Cert, Key string
}

// Layout is a cluster directory: the authority, one certificate per node and
// the admin certificate.
type Layout struct {
	// Dir is the directory.
	Dir string
	// Nodes are the node ids, in the order given to Init (Open sorts them).
	Nodes []string
}

// CACert returns the path of the authority's certificate.
func (l *Layout) CACert() string { return filepath.Join(l.Dir, CACertFile) }

// CAKey returns the path of the authority's key.
func (l *Layout) CAKey() string { return filepath.Join(l.Dir, CAKeyFile) }

// Node returns the files of node id.
func (l *Layout) Node(id string) Files {
	return Files{CA: l.CACert(), Cert: filepath.Join(l.Dir, id+".crt"), Key: filepath.Join(l.Dir, id+".key")}
}

// Admin returns the files of the admin client.
func (l *Layout) Admin() Files {
	return Files{CA: l.CACert(), Cert: filepath.Join(l.Dir, AdminCertFile), Key: filepath.Join(l.Dir, AdminKeyFile)}
}

// fileNames returns the names of every file of the layout, in the order
// they are published: node and admin files first and the authority's
// certificate last, so a directory cut short holds no ca.crt.
func (l *Layout) fileNames() []string {
	var names []string
	for _, id := range l.Nodes {
		names = append(names, id+".key", id+".crt")
	}
	return append(names, AdminKeyFile, AdminCertFile, CAKeyFile, CACertFile)
}

// Open returns the layout of an existing cluster directory: every <id>.crt
// whose name is a valid node id, besides ca.crt and admin.crt, is a node. It
// checks that ca.crt exists but verifies nothing; see Check.
func Open(dir string) (*Layout, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open cluster directory: %w", err)
	}
	l := &Layout{Dir: dir}
	if _, err := os.Stat(l.CACert()); err != nil {
		return nil, fmt.Errorf("open cluster directory: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || e.IsDir() || slices.Contains(reservedNames, id) || ValidateName(id) != nil {
			continue
		}
		l.Nodes = append(l.Nodes, id)
	}
	slices.Sort(l.Nodes)
	return l, nil
}

// Check loads every identity of the layout and verifies it against the
// authority: the authority's key matches its certificate, each node's
// certificate says node/<id> and the admin's says admin/admin.
func (l *Layout) Check() error {
	if _, err := loadIssuer(l); err != nil {
		return err
	}
	want := map[Identity]Files{{Kind: KindAdmin, Name: AdminName}: l.Admin()}
	for _, id := range l.Nodes {
		want[Identity{Kind: KindNode, Name: id}] = l.Node(id)
	}
	for id, files := range want {
		c, err := Load(files)
		if err != nil {
			return fmt.Errorf("check %s: %w", id, err)
		}
		if c.Identity != id {
			return fmt.Errorf("check %s: %s holds %s", id, files.Cert, c.Identity)
		}
	}
	return nil
}

// presence reports which of the layout's files exist.
func (l *Layout) presence() (present, missing []string, err error) {
	for _, name := range l.fileNames() {
		_, err := os.Lstat(filepath.Join(l.Dir, name))
		switch {
		case err == nil:
			present = append(present, name)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		default:
			return nil, nil, err
		}
	}
	return present, missing, nil
}
