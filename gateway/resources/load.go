package resources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Load reads manifests from files and directories and validates the whole set (Decode, then
// Set.Validate). A file named directly is read whatever its extension; a directory is walked
// recursively for .yaml, .yml and .json files in lexical order, skipping names that begin with "."
// (Kubernetes ConfigMap mounts keep their real files under "..data"; the visible names are symbolic
// links, which are followed to files but never to directories). A path given twice is read once.
//
// It returns all problems joined (file errors, decoding errors and cross-resource errors) and a nil
// Set when there is any. It blocks on file reads only. Safe for concurrent use.
func Load(paths []string, opt Options) (*Set, error) {
	if _, err := opt.withDefaults(); err != nil {
		return nil, err
	}
	var (
		files []string
		errs  []error
		seen  = map[string]bool{}
	)
	add := func(f string) {
		key := f
		if abs, err := filepath.Abs(f); err == nil {
			key = abs
		}
		if !seen[key] {
			seen[key] = true
			files = append(files, f)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("resources: %w", err))
			continue
		}
		if !fi.IsDir() {
			add(p)
			continue
		}
		root := p
		if lfi, err := os.Lstat(p); err == nil && lfi.Mode()&fs.ModeSymlink != 0 {
			root = p + string(filepath.Separator) // a linked directory: walk what it points at
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, fmt.Errorf("resources: %w", err))
				return nil
			}
			if path != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !IsManifestName(d.Name()) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, err := os.Stat(path)
				if err != nil {
					errs = append(errs, fmt.Errorf("resources: %w", err))
					return nil
				}
				if !target.Mode().IsRegular() {
					return nil
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			add(path)
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("resources: %w", err))
		}
	}

	all := &Set{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("resources: %w", err))
			continue
		}
		s, derrs := decodeFile(f, data, opt)
		errs = append(errs, derrs...)
		if s != nil {
			all.merge(s)
		}
	}
	errs = append(errs, all.crossCheck()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return all, nil
}

// IsManifestName reports whether Load reads a file of this name found in a directory: by its
// extension, .yaml, .yml or .json in any case (names starting with "." it skips as well).
func IsManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Add appends o's resources to s (o is not validated again: Validate the result).
func (s *Set) Add(o *Set) {
	if o != nil {
		s.merge(o)
	}
}

func (s *Set) merge(o *Set) {
	s.Channels = append(s.Channels, o.Channels...)
	s.Subscriptions = append(s.Subscriptions, o.Subscriptions...)
	s.Sources = append(s.Sources, o.Sources...)
	s.Brokers = append(s.Brokers, o.Brokers...)
	s.Triggers = append(s.Triggers, o.Triggers...)
	s.Unmanaged = append(s.Unmanaged, o.Unmanaged...)
}
