package config

import (
	"reflect"
	"strings"
)

// configKey describes one key of the configuration schema, derived from the
// koanf tags of Config.
type configKey struct {
	// Path is the dotted key; keys inside list elements use "[]", as in
	// "gateway.hosts[].routes[].prefix".
	Path string
	// Type is the Go type of the field.
	Type reflect.Type
}

// table reports whether the key is a list of tables (gateway.hosts).
func (k configKey) table() bool {
	return k.Type.Kind() == reflect.Slice && k.Type.Elem().Kind() == reflect.Struct
}

// scalarList reports whether the key is a list of scalars (access.deny).
func (k configKey) scalarList() bool {
	return k.Type.Kind() == reflect.Slice && k.Type.Elem().Kind() != reflect.Struct
}

// envSettable reports whether the key can be set from the environment or a
// flag: any key outside list elements, except lists of tables.
func (k configKey) envSettable() bool {
	return !strings.Contains(k.Path, "[]") && !k.table()
}

// configKeys returns every key of the schema in field order, sections
// excluded and lists of tables included (followed by their element keys).
func configKeys() []configKey {
	return appendKeys(nil, "", reflect.TypeFor[Config]())
}

func appendKeys(out []configKey, prefix string, t reflect.Type) []configKey {
	for f := range t.Fields() {
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		path := prefix + tag
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = appendKeys(out, path+".", f.Type)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, configKey{Path: path, Type: f.Type})
			out = appendKeys(out, path+"[].", f.Type.Elem())
		default:
			out = append(out, configKey{Path: path, Type: f.Type})
		}
	}
	return out
}
