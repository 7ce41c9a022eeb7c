package region

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/regioncache/regioncache/backends"
)

// ConfigureFromMap configures r from a flat configuration map, the way
// dogpile's configure_from_config does. With prefix "cache.users." it reads:
//
//	cache.users.backend          the backend name (required)
//	cache.users.expiration_time  a duration ("90s") or seconds (optional)
//	cache.users.version          schema version of written values (optional)
//	cache.users.min_version      minimum schema version read (optional)
//	cache.users.codec            a codec name (optional): "gob", "json", or
//	                             one registered with RegisterCodec, such as
//	                             "msgpack" (import region/msgpack)
//	cache.users.arguments.NAME   backend argument NAME
//
// Other keys under the prefix are an error naming them. opts apply after the
// values from the map.
func (r *Region) ConfigureFromMap(cfg map[string]any, prefix string, opts ...Option) error {
	get := func(k string) (any, bool) { v, ok := cfg[prefix+k]; return v, ok }
	bv, ok := get("backend")
	if !ok {
		return fmt.Errorf("%w: configuration has no %q", ErrBadOption, prefix+"backend")
	}
	name, ok := bv.(string)
	if !ok || name == "" {
		return fmt.Errorf("%w: %s: want a backend name, got %#v", ErrBadOption, prefix+"backend", bv)
	}
	args := backends.Args{}
	top := backends.Args{}
	var unknown []string
	for k, v := range cfg {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		rest := strings.TrimPrefix(k, prefix)
		switch {
		case strings.HasPrefix(rest, "arguments."):
			args[strings.TrimPrefix(rest, "arguments.")] = v
		case rest == "backend":
		case rest == "expiration_time", rest == "version", rest == "min_version", rest == "codec":
			top[rest] = v
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%w: unknown configuration key(s) %s", ErrBadOption, strings.Join(unknown, ", "))
	}
	var pre []Option
	exp, err := top.Duration("expiration_time", 0)
	if err != nil {
		return fmt.Errorf("%w (key %s)", err, prefix+"expiration_time")
	}
	if exp > 0 {
		pre = append(pre, WithExpiration(exp))
	}
	if top.Has("version") {
		v, err := top.Int("version", 0)
		if err != nil {
			return err
		}
		pre = append(pre, WithVersion(v))
	}
	if top.Has("min_version") {
		v, err := top.Int("min_version", 0)
		if err != nil {
			return err
		}
		pre = append(pre, WithMinVersion(v))
	}
	if top.Has("codec") {
		cn, err := top.String("codec", "")
		if err != nil {
			return err
		}
		c, ok := CodecByName(cn)
		if !ok {
			return fmt.Errorf("%s: %w", prefix+"codec", unknownCodec(cn))
		}
		pre = append(pre, WithCodec(c))
	}
	return r.Configure(name, args, append(pre, opts...)...)
}

// ConfigureFromFile configures r from a JSON file. Nested objects are
// flattened with dots, and the region's settings are read from under prefix
// as in ConfigureFromMap. For example, with prefix "cache.users." the file
//
//	{"cache": {"users": {
//	  "backend": "filesystem",
//	  "expiration_time": "10m",
//	  "arguments": {"base_dir": "/var/cache/users"}
//	}}}
//
// configures a filesystem region with a ten-minute expiration.
//
// YAML files are read by package region/yamlconfig
// (yamlconfig.ConfigureFromFile), which keeps the YAML parser out of programs
// that do not need it; given a .yaml or .yml file, ConfigureFromFile returns
// an error saying so.
func (r *Region) ConfigureFromFile(path, prefix string, opts ...Option) error {
	m, err := LoadConfigFile(path)
	if err != nil {
		return err
	}
	if err := r.ConfigureFromMap(m, prefix, opts...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// LoadConfigFile reads a JSON file into a flat map with dotted keys, as
// taken by ConfigureFromMap. For YAML files use package region/yamlconfig.
func LoadConfigFile(path string) (map[string]any, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".json":
	case ".yaml", ".yml":
		return nil, fmt.Errorf("%w: config file %s: YAML is read by package github.com/regioncache/regioncache/region/yamlconfig (yamlconfig.ConfigureFromFile); region reads only .json", ErrBadOption, path)
	default:
		return nil, fmt.Errorf("%w: config file %s: want a .json file (or .yaml/.yml with package region/yamlconfig)", ErrBadOption, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := json.Unmarshal(data, &tree); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("config file %s: line %d: %w", path, lineOf(data, se.Offset), err)
		case errors.As(err, &te):
			return nil, fmt.Errorf("config file %s: line %d: %w", path, lineOf(data, te.Offset), err)
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	flat := make(map[string]any)
	flatten("", tree, flat)
	return flat, nil
}

// lineOf returns the 1-based line of byte offset off in data.
func lineOf(data []byte, off int64) int {
	off = max(0, min(off, int64(len(data))))
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

func flatten(prefix string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			flatten(prefix+k+".", vv, out)
		}
	default:
		out[strings.TrimSuffix(prefix, ".")] = v
	}
}
