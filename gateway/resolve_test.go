package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chimalli/chimalli/tofu"
)

// linkHost is a virtual host whose routes share one docroot full of links
// between them, and the certificates its routes admit.
type linkHost struct {
	v        *vhost
	layers   *Layers
	certA    *x509.Certificate // allowed on /admin/ and /team/
	certB    *x509.Certificate // allowed on /team/ only
	docroot  string
	handler  Handler
	pubOnlyV *vhost // routes /pub/ and /admin/ only: no route covers /other/
}

// newLinkHost builds the docroot:
//
//	index.gmi, pub/page.gmi, other/page.gmi, .git/config
//	admin/index.gmi, admin/secret.gmi, ADMIN/upper.gmi, team/index.gmi
//	link -> admin                      a link to a protected directory
//	file-link.gmi -> admin/secret.gmi  a link to a protected file
//	file-link2.gmi -> file-link.gmi    a link to a link
//	chain -> chain2 -> link            a chain of directory links
//	pub/deep -> ../admin               a link in a middle segment
//	dots -> pub/../admin               ".." inside a target
//	upper -> ADMIN                     a spelling the prefix matcher folds
//	root-link -> .                     the root itself
//	hidden -> .git                     a dot-directory
//	admin/pub-link -> ../pub           from a protected area to an open one
//	team/ab-link.gmi -> ../admin/secret.gmi   between two certificate rules
//	pub/sub/index.gmi -> ../../admin/secret.gmi  an index that is a link
//	pub/out -> ../other                leads where only / covers
//
// Routes: /admin/ allows certificate A, /team/ allows A and B, / is open,
// all served by the same docroot handler.
func newLinkHost(t *testing.T) *linkHost {
	t.Helper()
	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	for name, body := range map[string]string{
		"index.gmi":        "# home\n",
		"pub/page.gmi":     "# pub\n",
		"other/page.gmi":   "# other\n",
		".git/config":      "[core]\n",
		"admin/index.gmi":  "# admin\n",
		"admin/secret.gmi": "secret\n",
		"ADMIN/upper.gmi":  "upper secret\n",
		"team/index.gmi":   "# team\n",
	} {
		writeFile(t, filepath.Join(www, name), []byte(body))
	}
	for link, target := range map[string]string{
		"link":              "admin",
		"file-link.gmi":     "admin/secret.gmi",
		"file-link2.gmi":    "file-link.gmi",
		"chain":             "chain2",
		"chain2":            "link",
		"pub/deep":          "../admin",
		"dots":              "pub/../admin",
		"upper":             "ADMIN",
		"root-link":         ".",
		"hidden":            ".git",
		"admin/pub-link":    "../pub",
		"team/ab-link.gmi":  "../admin/secret.gmi",
		"pub/sub/index.gmi": "../../admin/secret.gmi",
		"pub/out":           "../other",
	} {
		p := filepath.Join(www, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		symlink(t, target, p)
	}
	h := openDocroot(t, www)
	a, _, _ := genPair(t, "a", time.Now(), 30)
	b, _, _ := genPair(t, "b", time.Now(), 30)
	certA, certB := mustLeaf(t, a), mustLeaf(t, b)
	fpA, fpB := tofu.IdentityOf(certA).CertFingerprint(), tofu.IdentityOf(certB).CertFingerprint()
	host := func(routes ...Route) *vhost {
		v := &vhost{name: "example.org", names: []string{"example.org"}}
		for i := range routes {
			v.routes = append(v.routes, &compiledRoute{Route: routes[i]})
		}
		// Longest prefix first, as compileHost sorts them.
		for i := range v.routes {
			for j := i + 1; j < len(v.routes); j++ {
				if len(v.routes[j].Prefix) > len(v.routes[i].Prefix) {
					v.routes[i], v.routes[j] = v.routes[j], v.routes[i]
				}
			}
		}
		return v
	}
	return &linkHost{
		v: host(
			Route{Prefix: "/admin/", AllowedFingerprints: []tofu.Fingerprint{fpA}, Handler: h},
			Route{Prefix: "/team/", AllowedFingerprints: []tofu.Fingerprint{fpA, fpB}, Handler: h},
			Route{Prefix: "/", Handler: h},
		),
		pubOnlyV: host(
			Route{Prefix: "/admin/", AllowedFingerprints: []tofu.Fingerprint{fpA}, Handler: h},
			Route{Prefix: "/pub/", Handler: h},
		),
		layers:  &Layers{Pins: tofu.NewMemStore()},
		certA:   certA,
		certB:   certB,
		docroot: www,
		handler: h,
	}
}

// serve runs the request as the server does: Decide, then the route's
// handler with the request's host and layers set.
func (lh *linkHost) serve(t *testing.T, v *vhost, path string, cert *x509.Certificate) (Reason, *recorder) {
	t.Helper()
	r := geminiRequest(t, path)
	if cert != nil {
		r.ClientCert, r.ClientID = cert, tofu.IdentityOf(cert)
	}
	d := lh.layers.Decide(context.Background(), v, r, Admission{})
	if d.Reason != ReasonNone {
		return d.Reason, nil
	}
	r.Route, r.host, r.layers = d.Route, v, lh.layers
	var w recorder
	err := d.Route.Handler.ServeGemini(context.Background(), &w, r)
	if reason := reasonOf(err); reason != ReasonNone {
		if w.HeaderWritten() {
			t.Fatalf("%s: header %d %q written for a refusal", path, w.status, w.meta)
		}
		return reason, nil
	}
	return ReasonNone, &w
}

func TestDocrootLinksKeepRouteRules(t *testing.T) {
	lh := newLinkHost(t)
	const anon = "anonymous"
	tests := []struct {
		name   string
		path   string
		cert   string // anon, "A" or "B"
		reason Reason
		status int    // for ReasonNone
		body   string // for status 20
	}{
		{name: "protected file directly", path: "/admin/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "directory link", path: "/link/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "directory link, missing file", path: "/link/missing.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "directory link, wrong certificate", path: "/link/secret.gmi", cert: "B", reason: ReasonCertNotAuthorized},
		{name: "directory link, right certificate", path: "/link/secret.gmi", cert: "A", status: 20, body: "secret\n"},
		{name: "directory link without slash", path: "/link", cert: anon, reason: ReasonCertRequired},
		{name: "directory link index", path: "/link/", cert: anon, reason: ReasonCertRequired},
		{name: "directory link index, right certificate", path: "/link/", cert: "A", status: 20, body: "# admin\n"},
		{name: "file link", path: "/file-link.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "link to a link", path: "/file-link2.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "link to a link, right certificate", path: "/file-link2.gmi", cert: "A", status: 20, body: "secret\n"},
		{name: "chain of directory links", path: "/chain/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "link in a middle segment", path: "/pub/deep/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "dot-dot inside the target", path: "/dots/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "target folded onto the rule", path: "/upper/upper.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "link to the root", path: "/root-link/admin/secret.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "index that is a link", path: "/pub/sub/", cert: anon, reason: ReasonCertRequired},
		{name: "link to a dot-directory", path: "/hidden/config", cert: anon, reason: ReasonNotFound},
		{name: "protected to open", path: "/admin/pub-link/page.gmi", cert: "A", status: 20, body: "# pub\n"},
		{name: "protected to open, anonymous", path: "/admin/pub-link/page.gmi", cert: anon, reason: ReasonCertRequired},
		{name: "between rules, certificate in both", path: "/team/ab-link.gmi", cert: "A", status: 20, body: "secret\n"},
		{name: "between rules, certificate in one", path: "/team/ab-link.gmi", cert: "B", reason: ReasonCertNotAuthorized},
		{name: "open file", path: "/pub/page.gmi", cert: anon, status: 20, body: "# pub\n"},
		{name: "link within the open area", path: "/pub/out/page.gmi", cert: anon, status: 20, body: "# other\n"},
		{name: "root link to open", path: "/root-link/pub/page.gmi", cert: anon, status: 20, body: "# pub\n"},
	}
	certs := map[string]*x509.Certificate{anon: nil, "A": lh.certA, "B": lh.certB}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, w := lh.serve(t, lh.v, tc.path, certs[tc.cert])
			if reason != tc.reason {
				t.Fatalf("%s as %s: reason %v, want %v", tc.path, tc.cert, reason, tc.reason)
			}
			if reason != ReasonNone {
				return
			}
			if w.status != tc.status || tc.status == 20 && w.body.String() != tc.body {
				t.Fatalf("%s as %s: %d %q %q, want %d %q", tc.path, tc.cert, w.status, w.meta, w.body.String(), tc.status, tc.body)
			}
		})
	}
}

func TestDocrootLinkToUnroutedPath(t *testing.T) {
	lh := newLinkHost(t)
	// On a host whose routes are /pub/ and /admin/ only, /other/ is served
	// by no route: a link from /pub/ into it is 51, though the file exists.
	if reason, _ := lh.serve(t, lh.pubOnlyV, "/pub/out/page.gmi", nil); reason != ReasonNotFound {
		t.Fatalf("link to an unrouted path: reason %v, want not found", reason)
	}
	if reason, _ := lh.serve(t, lh.pubOnlyV, "/pub/deep/secret.gmi", nil); reason != ReasonCertRequired {
		t.Fatalf("link into /admin/: reason %v, want cert required", reason)
	}
	if reason, w := lh.serve(t, lh.pubOnlyV, "/pub/page.gmi", nil); reason != ReasonNone || w.status != 20 {
		t.Fatalf("plain file: reason %v", reason)
	}
}

func TestResolveRealName(t *testing.T) {
	lh := newLinkHost(t)
	root, err := os.OpenRoot(lh.docroot)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	tests := []struct {
		name   string
		real   string
		checks []string // the paths check is called with, in order
	}{
		{name: "pub/page.gmi", real: "pub/page.gmi"},
		{name: ".", real: "."},
		{name: "link/secret.gmi", real: "admin/secret.gmi", checks: []string{"/admin/secret.gmi"}},
		{name: "chain/secret.gmi", real: "admin/secret.gmi", checks: []string{"/chain2/secret.gmi", "/link/secret.gmi", "/admin/secret.gmi"}},
		{name: "dots/secret.gmi", real: "admin/secret.gmi", checks: []string{"/admin/secret.gmi"}},
		{name: "root-link", real: ".", checks: []string{"/"}},
		{name: "pub/sub/index.gmi", real: "admin/secret.gmi", checks: []string{"/admin/secret.gmi"}},
		{name: "admin/pub-link", real: "pub", checks: []string{"/pub"}},
	}
	for _, tc := range tests {
		var got []string
		f, _, real, err := resolve(root, tc.name, func(p string) error { got = append(got, p); return nil })
		if err != nil {
			t.Errorf("resolve(%q): %v", tc.name, err)
			continue
		}
		f.Close()
		if real != tc.real || strings.Join(got, " ") != strings.Join(tc.checks, " ") {
			t.Errorf("resolve(%q) = %q, checks %q; want %q, %q", tc.name, real, got, tc.real, tc.checks)
		}
	}
	// A refusal from check stops the walk before the rest is looked at.
	stop := errors.New("stop")
	if _, _, _, err := resolve(root, "link/missing.gmi", func(string) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("resolve with a refusing check: %v, want the check's error", err)
	}
}

// TestResolveRefusesSwappedComponent stands in for a writer racing the
// walk: the file or directory resolve looked at is replaced, by a link
// into the protected area, before it is opened.
func TestResolveRefusesSwappedComponent(t *testing.T) {
	lh := newLinkHost(t)
	root, err := os.OpenRoot(lh.docroot)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	lfi, err := root.Lstat("pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(lh.docroot, "pub"), filepath.Join(lh.docroot, "pub-old")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "admin", filepath.Join(lh.docroot, "pub"))
	if sub, err := openDirSame(root, "pub", lfi); !errors.Is(err, errChanged) {
		if sub != nil {
			sub.Close()
		}
		t.Fatalf("directory swapped for a link: %v, want errChanged", err)
	}

	lfi, err = root.Lstat("index.gmi")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(lh.docroot, "index.gmi")); err != nil {
		t.Fatal(err)
	}
	symlink(t, "admin/secret.gmi", filepath.Join(lh.docroot, "index.gmi"))
	if f, _, err := openSame(root, "index.gmi", lfi); !errors.Is(err, errChanged) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("file swapped for a link: %v, want errChanged", err)
	}
}

func TestAliasPath(t *testing.T) {
	tests := []struct {
		real, rest []string
		want       string
		ok         bool
	}{
		{nil, []string{"admin", "x.gmi"}, "/admin/x.gmi", true},
		{[]string{"a"}, []string{"..", "b", "", "."}, "/b", true},
		{nil, nil, "/", true},
		{[]string{"a"}, []string{"..", ".."}, "", false},
		{nil, []string{".git", "config"}, "", false},
		{nil, []string{"a b", "caf\u00e9", "100%"}, "/a%20b/caf%C3%A9/100%25", true},
	}
	for _, tc := range tests {
		got, ok := aliasPath(tc.real, tc.rest)
		if got != tc.want || ok != tc.ok {
			t.Errorf("aliasPath(%q, %q) = %q, %v; want %q, %v", tc.real, tc.rest, got, ok, tc.want, tc.ok)
		}
	}
}
