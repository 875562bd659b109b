// Package config is a node's configuration: the Config structs (whose koanf
// tags are the keys of files, CHIMALLI_* variables and
// docs/configuration.md), Load (defaults ← file ← environment ← flags, every
// problem reported at once, in user words), Validate, and the accessors
// that derive effective values (NodeID, AdminSocket, PinsFile, …).
// cmd/node turns a Config into the plain structs of the library packages.
package config
