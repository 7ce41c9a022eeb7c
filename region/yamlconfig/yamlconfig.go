// Package yamlconfig configures regions from YAML files. It is the YAML
// counterpart of region.ConfigureFromFile (which reads JSON), kept in its own
// package so that programs that do not read YAML do not link a YAML parser.
//
// With prefix "cache.users." the file
//
//	cache:
//	  users:
//	    backend: filesystem
//	    expiration_time: 10m
//	    arguments:
//	      base_dir: /var/cache/users
//
// configures a filesystem region with a ten-minute expiration:
//
//	err := yamlconfig.ConfigureFromFile(r, "cache.yaml", "cache.users.")
package yamlconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/regioncache/regioncache/region"
)

// ConfigureFromFile configures r from a YAML file, or a JSON one (by the
// extension: .yaml, .yml or .json; JSON goes to region.ConfigureFromFile).
// Nested mappings are flattened with dots, and the region's settings are read
// from under prefix as in region.ConfigureFromMap. opts apply after the
// values from the file.
func ConfigureFromFile(r *region.Region, path, prefix string, opts ...region.Option) error {
	m, err := Load(path)
	if err != nil {
		return err
	}
	if err := r.ConfigureFromMap(m, prefix, opts...); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Load reads a YAML (or JSON) file into a flat map with dotted keys, as taken
// by region.ConfigureFromMap. Syntax and type errors carry the file name and
// the YAML parser's line number.
func Load(path string) (map[string]any, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
	case ".json":
		return region.LoadConfigFile(path)
	default:
		return nil, fmt.Errorf("%w: config file %s: want a .yaml, .yml or .json file", region.ErrBadOption, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse reads YAML data into a flat map with dotted keys. name identifies
// the data in errors (a file name, say).
func Parse(data []byte, name string) (map[string]any, error) {
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		return nil, fmt.Errorf("config file %s: %w", name, err)
	}
	flat := make(map[string]any)
	flatten("", tree, flat)
	return flat, nil
}

func flatten(prefix string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		for k, vv := range x {
			flatten(prefix+k+".", vv, out)
		}
	case map[any]any: // a mapping with a non-string key, such as 1: or true:
		for k, vv := range x {
			flatten(prefix+fmt.Sprint(k)+".", vv, out)
		}
	default:
		out[strings.TrimSuffix(prefix, ".")] = v
	}
}
