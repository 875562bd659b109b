package pki

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// ErrInitialised is wrapped by Init's error when the directory already holds
// a complete cluster for the requested nodes that checks out; Init then
// writes nothing and returns the layout along with the error.
var ErrInitialised = errors.New("cluster directory already initialised")

// InitOptions describe a new cluster.
type InitOptions struct {
	// Nodes are the node ids: DNS labels (see ValidateName), unique, not
	// "ca" or "admin". Each id is also a DNS name of its certificate, so
	// a node can be reached by its id as a host name (for example a compose
	// service name). Required.
	Nodes []string
	// Hosts are further subject alternative names per node id: DNS names
	// or IP addresses by which other nodes reach it.
	Hosts map[string][]string
	// SANs are further subject alternative names for every node.
	SANs []string
	// NoLoopback leaves localhost, 127.0.0.1 and ::1 out of the node
	// certificates. By default they are in, so a cluster on one machine
	// works.
	NoLoopback bool
	// CADays and CertDays are the validity of the authority and of the
	// node and admin certificates; zero means DefaultCADays and
	// DefaultCertDays. A certificate never outlives the authority.
	CADays, CertDays int
	// Now is the time of issue; zero means time.Now().
	Now time.Time
}

// Init creates a cluster in dir: the authority (ca.crt, ca.key), a
// certificate and key per node (<id>.crt, <id>.key) and the admin client
// (admin.crt, admin.key). Keys are written 0600, certificates 0644, and dir
// is created, or tightened, to 0700.
//
// Init never overwrites a file and never leaves part of a cluster behind:
// every file is written to a staging directory first; a dir that does not
// exist is created by renaming the staging directory into place, and in an
// existing dir the files are moved in one by one and removed again if any
// move fails. If dir already holds every file of the requested cluster and
// they check out (see Layout.Check), Init returns the layout and an error
// wrapping ErrInitialised; if it holds some of them, or they do not check
// out, the error says which and Init writes nothing.
func Init(dir string, opts InitOptions) (*Layout, error) {
	return initDir(dir, opts, fileOps{publish: publishNoReplace, rename: os.Rename})
}

// fileOps are the steps that move staged files into place, separate so that
// tests can make one fail.
type fileOps struct {
	// publish moves a staged file to its final name, refusing to replace
	// an existing file.
	publish func(staged, final string) error
	// rename moves the staging directory to the cluster directory.
	rename func(oldpath, newpath string) error
}

func initDir(dir string, opts InitOptions, ops fileOps) (*Layout, error) {
	reqs, err := opts.requests()
	if err != nil {
		return nil, fmt.Errorf("cluster init: %w", err)
	}
	l := &Layout{Dir: dir, Nodes: slices.Clone(opts.Nodes)}
	fresh, err := checkTarget(l)
	if errors.Is(err, ErrInitialised) {
		return l, err
	}
	if err != nil {
		return nil, fmt.Errorf("cluster init: %w", err)
	}
	files, err := issueAll(reqs, opts)
	if err != nil {
		return nil, fmt.Errorf("cluster init: %w", err)
	}
	if fresh {
		err = writeFresh(dir, files, ops)
	} else {
		err = writeInPlace(dir, l.fileNames(), files, ops)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster init: %w", err)
	}
	return l, nil
}

// requests validates the options and returns the certificate request of
// every node, then the admin's.
func (o InitOptions) requests() ([]leafRequest, error) {
	if len(o.Nodes) == 0 {
		return nil, errors.New("no nodes: name at least one node id")
	}
	seen := map[string]bool{}
	for _, id := range o.Nodes {
		if err := validateNodeID(id); err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("node id %q given twice", id)
		}
		seen[id] = true
	}
	for id := range o.Hosts {
		if !seen[id] {
			return nil, fmt.Errorf("hosts for %q, which is not one of the nodes %s", id, strings.Join(o.Nodes, ","))
		}
	}
	var reqs []leafRequest
	for _, id := range o.Nodes {
		req, err := nodeRequest(id, append(slices.Clone(o.Hosts[id]), o.SANs...), o.NoLoopback, o.Nodes)
		if err != nil {
			return nil, err
		}
		reqs = append(reqs, req)
	}
	return append(reqs, leafRequest{id: Identity{Kind: KindAdmin, Name: AdminName}}), nil
}

// validateNodeID checks a node id: a DNS label that is not a reserved name.
func validateNodeID(id string) error {
	if err := ValidateName(id); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	if slices.Contains(reservedNames, id) {
		return fmt.Errorf("node id %q: %w: reserved for the %s files", id, ErrBadName, id)
	}
	return nil
}

// nodeRequest returns the certificate request of node id with the extra
// names hosts (DNS names or IP addresses). nodes are every node id of the
// cluster: a node may not carry another node's id as a name, or it could
// pose as that node.
func nodeRequest(id string, hosts []string, noLoopback bool, nodes []string) (leafRequest, error) {
	req := leafRequest{id: Identity{Kind: KindNode, Name: id}, dns: []string{id}}
	if !noLoopback {
		hosts = append(hosts, "localhost", "127.0.0.1", "::1")
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(req.ips, ip.Equal) {
				req.ips = append(req.ips, ip)
			}
			continue
		}
		name := strings.ToLower(h)
		if err := validateHostname(name); err != nil {
			return leafRequest{}, fmt.Errorf("node %s: host %q: %w", id, h, err)
		}
		if name != id && slices.Contains(nodes, name) {
			return leafRequest{}, fmt.Errorf("node %s: host %q is another node's id", id, h)
		}
		if !slices.Contains(req.dns, name) {
			req.dns = append(req.dns, name)
		}
	}
	return req, nil
}

// validateHostname checks a DNS name: dot-separated labels, at most 253
// characters.
func validateHostname(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("not a DNS name or IP address")
	}
	for _, label := range strings.Split(name, ".") {
		if !labelRE.MatchString(label) {
			return errors.New("not a DNS name or IP address")
		}
	}
	return nil
}

// checkTarget looks at the cluster directory before anything is generated.
// It reports whether the directory is missing (fresh); an error wraps
// ErrInitialised when the whole cluster is already there and checks out.
func checkTarget(l *Layout) (fresh bool, err error) {
	st, err := os.Stat(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if !st.IsDir() {
		return false, fmt.Errorf("%s: not a directory", l.Dir)
	}
	present, missing, err := l.presence()
	if err != nil {
		return false, err
	}
	switch {
	case len(present) == 0:
		return false, nil
	case len(missing) == 0:
		if err := l.Check(); err != nil {
			return false, fmt.Errorf("%s holds a cluster that does not check out: %w", l.Dir, err)
		}
		return false, fmt.Errorf("%s: %w", l.Dir, ErrInitialised)
	}
	return false, fmt.Errorf("%s: %w: it holds %s but not %s; add nodes to an existing cluster one at a time, or start from an empty directory",
		l.Dir, fs.ErrExist, strings.Join(present, ", "), strings.Join(missing, ", "))
}

// issued is the cluster's material: file base name (ca, node ids, admin) to
// certificate and key, and the order of the names.
type issued struct {
	names []string
	pairs map[string]pemPair
}

// issueAll creates the authority and signs every request.
func issueAll(reqs []leafRequest, opts InitOptions) (issued, error) {
	now := issueTime(opts.Now)
	caDays, certDays := cmp.Or(opts.CADays, DefaultCADays), cmp.Or(opts.CertDays, DefaultCertDays)
	ca, caPair, err := newCA(now, caDays)
	if err != nil {
		return issued{}, err
	}
	out := issued{names: []string{"ca"}, pairs: map[string]pemPair{"ca": caPair}}
	for _, req := range reqs {
		pair, err := ca.sign(req, now, certDays)
		if err != nil {
			return issued{}, err
		}
		out.names = append(out.names, req.id.Name)
		out.pairs[req.id.Name] = pair
	}
	return out, nil
}

// stage writes every pair into the staging directory tmp.
func stage(tmp string, files issued) error {
	for _, name := range files.names {
		p := files.pairs[name]
		if _, _, err := tofu.WriteKeyPair(tmp, name, p.cert, p.key, false); err != nil {
			return err
		}
	}
	return tofu.SyncDir(tmp)
}

// writeFresh creates dir, which does not exist, by staging every file in a
// sibling directory and renaming it into place.
func writeFresh(dir string, files issued, ops fileOps) (err error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(filepath.Clean(dir))+".init-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o700); err != nil {
		return err
	}
	if err := stage(tmp, files); err != nil {
		return err
	}
	if err := ops.rename(tmp, dir); err != nil {
		return err
	}
	return tofu.SyncDir(parent)
}

// writeInPlace fills dir, which exists and holds none of names, by staging
// every file in a directory inside it and moving them into place one by one;
// if a move fails, the files already moved are removed again.
func writeInPlace(dir string, names []string, files issued, ops fileOps) (err error) {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".init-*")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); err == nil {
			err = rerr
		}
	}()
	if err := stage(tmp, files); err != nil {
		return err
	}
	var moved []string
	for _, name := range names {
		final := filepath.Join(dir, name)
		if err := ops.publish(filepath.Join(tmp, name), final); err != nil {
			for _, p := range moved {
				_ = os.Remove(p)
			}
			return err
		}
		moved = append(moved, final)
	}
	return tofu.SyncDir(dir)
}

// publishNoReplace moves staged to final unless final exists (the error then
// wraps fs.ErrExist), as tofu.PublishFile does. On error the staged file
// may remain; its directory is removed afterwards.
func publishNoReplace(staged, final string) error {
	return tofu.PublishFile(staged, final, false)
}
