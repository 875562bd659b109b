package pki

import (
	"cmp"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// OldSuffix is appended to the names of the certificate and key a renewal
// replaced: <name>.crt.old and <name>.key.old.
const OldSuffix = ".old"

// RenewOptions describe the renewal of a node's or the admin's certificate.
type RenewOptions struct {
	// Hosts are the node's subject alternative names besides its id: DNS
	// names or IP addresses. With Hosts empty and NoLoopback false, the
	// new certificate names what the old one named.
	Hosts []string
	// NoLoopback leaves localhost, 127.0.0.1 and ::1 out. Setting it, or
	// Hosts, replaces the old certificate's names.
	NoLoopback bool
	// CertDays is the validity; zero means DefaultCertDays. The certificate
	// never outlives the authority.
	CertDays int
	// Now is the time of issue; zero means time.Now().
	Now time.Time
}

// Renewed is what Renew wrote.
type Renewed struct {
	// Identity is the holder of the certificate: node/<id> or admin/admin.
	Identity Identity
	// Files are the new certificate and key (and the unchanged CA file).
	Files Files
	// OldCert and OldKey are where the replaced certificate and key were
	// kept; OldKey is empty when there was no key to keep.
	OldCert, OldKey string
	// NotAfter is the end of the new certificate's validity.
	NotAfter time.Time
}

// Renew signs a fresh key and certificate for name, a node id of the
// cluster in dir or AdminName, with the authority there (which needs
// ca.key), and puts them in place of the old ones, which it keeps as
// <name>.crt.old and <name>.key.old (replacing those of an earlier renewal).
//
// It refuses a name without a certificate in dir, and an old certificate
// that the authority did not sign or that names another identity; an
// expired one is renewed. The new certificate names what the old one named
// unless opts give other names (nodes only). The new files are written
// 0644 and 0600 in a staging directory inside dir, given the old files'
// owners, and renamed into place key first; if the certificate cannot be
// moved after the key was, the old key is put back, so dir never holds a
// certificate and a key that do not belong together.
func Renew(dir, name string, opts RenewOptions) (Renewed, error) {
	return renewIn(dir, name, opts, fileOps{rename: os.Rename})
}

func renewIn(dir, name string, opts RenewOptions, ops fileOps) (Renewed, error) {
	r, req, err := renewRequest(dir, name, opts)
	if err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	l := &Layout{Dir: dir}
	ca, err := loadIssuer(l)
	if err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	old, err := readCert(r.Files.Cert)
	if err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	if err := old.CheckSignatureFrom(ca.cert); err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %s is not signed by the authority in %s: %w", name, r.Files.Cert, l.CACert(), err)
	}
	if id, err := IdentityOf(old); err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %s: %w", name, r.Files.Cert, err)
	} else if id != r.Identity {
		return Renewed{}, fmt.Errorf("renew %s: %s names %s, not %s", name, r.Files.Cert, id, r.Identity)
	}
	if req.dns == nil && req.ips == nil && r.Identity.Kind == KindNode {
		req.dns, req.ips = old.DNSNames, old.IPAddresses
	}
	pair, err := ca.sign(req, issueTime(opts.Now), cmp.Or(opts.CertDays, DefaultCertDays))
	if err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	leaf, err := parseCertPEM(pair.cert)
	if err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	r.NotAfter = leaf.NotAfter
	if r.OldKey, err = replacePair(dir, name, pair, ops); err != nil {
		return Renewed{}, fmt.Errorf("renew %s: %w", name, err)
	}
	r.OldCert = r.Files.Cert + OldSuffix
	return r, nil
}

// renewRequest checks name and opts and returns the identity and files to
// renew and the certificate request; a node request without names takes
// the old certificate's.
func renewRequest(dir, name string, opts RenewOptions) (Renewed, leafRequest, error) {
	l, err := Open(dir)
	if err != nil {
		return Renewed{}, leafRequest{}, err
	}
	if name == AdminName {
		if len(opts.Hosts) > 0 || opts.NoLoopback {
			return Renewed{}, leafRequest{}, errors.New("the admin certificate names no hosts (--hosts, --san and --no-loopback are for nodes)")
		}
		id := Identity{Kind: KindAdmin, Name: AdminName}
		if _, err := os.Lstat(l.Admin().Cert); err != nil {
			return Renewed{}, leafRequest{}, err
		}
		return Renewed{Identity: id, Files: l.Admin()}, leafRequest{id: id}, nil
	}
	if err := validateNodeID(name); err != nil {
		return Renewed{}, leafRequest{}, err
	}
	if !slices.Contains(l.Nodes, name) {
		return Renewed{}, leafRequest{}, fmt.Errorf("no node %s in %s (%s does not exist; --add-node signs a new node)", name, dir, l.Node(name).Cert)
	}
	id := Identity{Kind: KindNode, Name: name}
	r := Renewed{Identity: id, Files: l.Node(name)}
	if len(opts.Hosts) == 0 && !opts.NoLoopback {
		return r, leafRequest{id: id}, nil
	}
	req, err := nodeRequest(name, opts.Hosts, opts.NoLoopback, l.Nodes)
	return r, req, err
}

// replacePair puts pair in place of dir's <name>.crt and <name>.key, keeping
// the old files as <name>.crt.old and <name>.key.old, and returns the path
// of the kept key ("" if there was no key). Every file is prepared in a
// staging directory inside dir: the new pair with the old files' owners,
// and hard links to the old files (which keep their owner and mode). Then
// ops.rename moves the old links to their .old names, the new key and the
// new certificate into place; if the certificate's move fails, the old key
// goes back. A failure before the new key's move changes nothing but the
// .old files.
func replacePair(dir, name string, pair pemPair, ops fileOps) (oldKey string, err error) {
	tmp, err := os.MkdirTemp(dir, ".renew-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); err == nil && rerr != nil {
			err = rerr
		}
	}()
	newCert, newKey, err := tofu.WriteKeyPair(tmp, name, pair.cert, pair.key, false)
	if err != nil {
		return "", err
	}
	certPath, keyPath, _ := tofu.KeyPairPaths(dir, name)
	// The new files get the old files' owners, so a node's key stays
	// readable by the node user.
	for _, p := range [][2]string{{certPath, newCert}, {keyPath, newKey}} {
		if err := copyOwner(p[0], p[1]); err != nil {
			return "", err
		}
	}
	type move struct{ from, to string }
	var moves []move
	hasKey := true
	if _, err := os.Lstat(keyPath); errors.Is(err, fs.ErrNotExist) {
		hasKey = false // a lost key: renewal is how to recover
	} else if err != nil {
		return "", err
	}
	keepKey := filepath.Join(tmp, name+".key.keep")
	if hasKey {
		if err := os.Link(keyPath, keepKey); err != nil {
			return "", err
		}
		oldLink := filepath.Join(tmp, name+".key"+OldSuffix)
		if err := os.Link(keyPath, oldLink); err != nil {
			return "", err
		}
		oldKey = keyPath + OldSuffix
		moves = append(moves, move{oldLink, oldKey})
	}
	oldCertLink := filepath.Join(tmp, name+".crt"+OldSuffix)
	if err := os.Link(certPath, oldCertLink); err != nil {
		return "", err
	}
	moves = append(moves, move{oldCertLink, certPath + OldSuffix})
	if err := tofu.SyncDir(tmp); err != nil {
		return "", err
	}
	for _, m := range moves {
		if err := ops.rename(m.from, m.to); err != nil {
			return "", err
		}
	}
	if err := ops.rename(newKey, keyPath); err != nil {
		return "", err
	}
	if err := ops.rename(newCert, certPath); err != nil {
		var rerr error
		if hasKey {
			rerr = os.Rename(keepKey, keyPath)
		} else {
			rerr = os.Remove(keyPath)
		}
		if rerr != nil {
			return "", fmt.Errorf("%w; and putting the old key back failed, so %s and %s do not match: %v (the old key is %s)",
				err, certPath, keyPath, rerr, keyPath+OldSuffix)
		}
		return "", errors.Join(err, tofu.SyncDir(dir))
	}
	return oldKey, tofu.SyncDir(dir)
}

// copyOwner gives file to the owner of like, when they differ.
func copyOwner(like, file string) error {
	a, err := os.Lstat(like)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	b, err := os.Lstat(file)
	if err != nil {
		return err
	}
	oa, ok1 := ownerOf(a)
	ob, ok2 := ownerOf(b)
	if !ok1 || !ok2 || oa == ob {
		return nil
	}
	if err := os.Lchown(file, oa.UID, oa.GID); err != nil {
		return fmt.Errorf("give the new file the owner of %s (%d:%d): %w (run as that user or as root)", like, oa.UID, oa.GID, err)
	}
	return nil
}

// readCert reads a PEM file's first certificate.
func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := parseCertPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// parseCertPEM parses the first PEM block of data as a certificate.
func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
