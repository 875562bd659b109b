package gateway

import (
	"embed"
	"io/fs"
)

//go:embed welcome/*.gmi
var welcomeFiles embed.FS

// WelcomeHandler returns the built-in welcome capsule: a short page saying
// what Chimalli is and how to serve real content, at "/", and the security
// layers in order at "/about.gmi". It is the default route when no docroot
// or upstream is configured.
func WelcomeHandler() Handler {
	sub, err := fs.Sub(welcomeFiles, "welcome")
	if err != nil {
		panic("gateway: embedded welcome capsule: " + err.Error()) // unreachable: the directory is embedded
	}
	return NewStatic(sub)
}
