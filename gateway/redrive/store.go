package redrive

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Store keeps jobs across restarts. Implementations must be safe for concurrent use.
type Store interface {
	// Save stores the job's status, replacing what was stored under its ID.
	Save(s Status) error
	// Load returns every stored job.
	Load() ([]Status, error)
}

// FileStore keeps each job in DIR/ID.json, replaced atomically (written to a temporary file, then
// renamed), so a crash leaves either the old or the new status, never half of one.
type FileStore struct{ Dir string }

var _ Store = FileStore{}

// Save writes s to DIR/ID.json, creating DIR when needed.
func (f FileStore) Save(s Status) error {
	if err := os.MkdirAll(f.Dir, 0o750); err != nil {
		return fmt.Errorf("redrive: state dir: %w", err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.Dir, s.ID+".*.tmp")
	if err != nil {
		return fmt.Errorf("redrive: save %s: %w", s.ID, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("redrive: save %s: %w", s.ID, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(f.Dir, s.ID+".json")); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("redrive: save %s: %w", s.ID, err)
	}
	return nil
}

// Load reads every DIR/*.json; a missing DIR holds no job. A file that cannot be read or parsed is
// an error naming it (the others are still returned).
func (f FileStore) Load() ([]Status, error) {
	entries, err := os.ReadDir(f.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redrive: state dir: %w", err)
	}
	var out []Status
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(f.Dir, e.Name()))
		var s Status
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err == nil && s.ID+".json" != e.Name() {
			err = errors.New("its id does not match its name")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("redrive: %s: %w", e.Name(), err))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}
