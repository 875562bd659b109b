package pki

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// NodeOptions describe a node added to an existing cluster.
type NodeOptions struct {
	// Hosts are further subject alternative names: DNS names or IP
	// addresses.
	Hosts []string
	// NoLoopback leaves localhost, 127.0.0.1 and ::1 out.
	NoLoopback bool
	// CertDays is the validity; zero means DefaultCertDays. The certificate
	// never outlives the authority.
	CertDays int
	// Now is the time of issue; zero means time.Now().
	Now time.Time
}

// AddNode signs a certificate for node id with the authority of the cluster
// in dir (which needs ca.key) and writes <id>.crt and <id>.key there (0644
// and 0600, atomically, both or neither). It refuses, with an error wrapping
// fs.ErrExist, a node that already has files.
func AddNode(dir, id string, opts NodeOptions) (Files, error) {
	l, err := Open(dir)
	if err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	if err := validateNodeID(id); err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	if slices.Contains(l.Nodes, id) {
		return Files{}, fmt.Errorf("add node: %s: %w", l.Node(id).Cert, fs.ErrExist)
	}
	req, err := nodeRequest(id, opts.Hosts, opts.NoLoopback, append(slices.Clone(l.Nodes), id))
	if err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	ca, err := loadIssuer(l)
	if err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	pair, err := ca.sign(req, issueTime(opts.Now), cmp.Or(opts.CertDays, DefaultCertDays))
	if err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	if _, _, err := tofu.WriteKeyPair(dir, id, pair.cert, pair.key, false); err != nil {
		return Files{}, fmt.Errorf("add node: %w", err)
	}
	return l.Node(id), nil
}
