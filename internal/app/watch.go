package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/eventgate/eventgate/gateway/resources"
)

// reloadDebounce collects the burst of file events an editor or `kubectl cp` makes into one reload.
const reloadDebounce = 200 * time.Millisecond

// newWatcher watches the resource files and directories (and the ingress token secret). Run calls it
// before the servers start, so that a change made once the gateway answers is never missed. Nil when
// the platform has no file watching (logged: changes then need a restart).
func (a *App) newWatcher() *fsnotify.Watcher {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Error("resource watch unavailable; changes need a restart", "err", err)
		return nil
	}
	dirs := a.watchDirs()
	if a.cfg.Ingress.Auth.Secret != "" {
		dirs = append(dirs, filepath.Join(a.cfg.SecretsDir, a.cfg.Ingress.Auth.Secret))
	}
	for _, p := range dirs {
		if err := w.Add(p); err != nil {
			a.log.Warn("resource watch", "path", p, "err", err)
		}
	}
	return w
}

// watch reloads the resources whenever w reports a change, until ctx is done; then it closes w. A
// set that fails to load or apply is logged and the last good set keeps running. A nil w returns at
// once.
func (a *App) watch(ctx context.Context, w *fsnotify.Watcher) {
	if w == nil {
		return
	}
	defer w.Close()
	filter := a.newReloadFilter(w.WatchList())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			name := absPath(ev.Name)
			st, err := os.Stat(ev.Name)
			isDir := err == nil && st.IsDir()
			if isDir && ev.Has(fsnotify.Create) {
				_ = w.Add(ev.Name) // a new subdirectory of a watched directory
				filter.dirs[name] = true
			}
			reload := filter.reloads(name, isDir, err != nil)
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(filter.dirs, name) // the name may come back as a file
			}
			if !reload {
				// Not read by a reload: without this, a log written into the watched directory
				// (serve -f . 2> serve.log) reloads on every line, and each reload logs a line.
				continue
			}
			timer.Reset(reloadDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			a.log.Warn("resource watch", "err", err)
		case <-timer.C:
			a.reload(ctx)
		}
	}
}

// reloadFilter tells the file events that can change what a reload reads from those that cannot.
// Paths in it are absolute and clean (absPath), as are the names given to reloads.
type reloadFilter struct {
	files     map[string]bool // the files given by name: read whatever their extension
	dirs      map[string]bool // the directories watched: a removed one held manifests, whatever its name
	secretDir string          // the ingress token directory; "" when there is none
}

// newReloadFilter is the filter for a's paths and token secret, watched as dirs.
func (a *App) newReloadFilter(dirs []string) reloadFilter {
	f := reloadFilter{files: map[string]bool{}, dirs: map[string]bool{}}
	for _, p := range a.paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			f.files[absPath(p)] = true
		}
	}
	for _, d := range dirs {
		f.dirs[absPath(d)] = true
	}
	if a.cfg.Ingress.Auth.Secret != "" {
		f.secretDir = absPath(filepath.Join(a.cfg.SecretsDir, a.cfg.Ingress.Auth.Secret))
	}
	return f
}

// reloads reports whether an event on name may change what a reload reads, so that a reload is
// worth scheduling. isDir is whether name is a directory now; gone, whether it no longer exists
// (removed or renamed away). Only what certainly cannot matter is left out: a file in a resource
// directory that resources.Load skips for its extension.
func (f reloadFilter) reloads(name string, isDir, gone bool) bool {
	switch {
	case isDir || f.dirs[name]:
		return true // a subdirectory's manifests are read too
	case f.secretDir != "" && (name == f.secretDir || strings.HasPrefix(name, f.secretDir+string(filepath.Separator))):
		return true // token files are named NAMESPACE.CHANNEL: any extension
	case f.files[name]:
		return true
	}
	base := filepath.Base(name)
	ext := filepath.Ext(base)
	switch {
	case strings.HasPrefix(base, "."):
		// Load skips these, but a Kubernetes ConfigMap mount changes by swapping its ..data link
		// to a new ..TIMESTAMP directory: that swap is the only event such an update makes.
		return true
	case resources.IsManifestName(base):
		return true
	case gone && ext == "":
		return true // may have been a directory that was never watched (made and removed at once)
	}
	return false
}

// absPath is p absolute and clean, or only clean when the working directory is unknown.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return filepath.Clean(p)
}

func (a *App) reload(ctx context.Context) {
	if a.cfg.Ingress.Auth.Secret != "" {
		if err := a.loadTokens(); err != nil {
			a.log.Error("ingress tokens not reloaded; keeping the last good ones", "err", err)
		}
	}
	set, err := a.load()
	if err != nil {
		a.log.Error("resources rejected; keeping the last good set", "err", err)
		return
	}
	if err := a.Apply(ctx, set); err != nil {
		a.log.Error("resources applied with errors", "err", err)
		return
	}
	a.log.Info("resources reloaded", "channels", len(set.Channels), "subscriptions", len(set.Subscriptions))
}

// watchDirs lists the directories to watch: each directory given (and its subdirectories), and the
// parent of each file given — editors replace files by rename, which a watch on the file would lose.
func (a *App) watchDirs() []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, p := range a.paths {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !st.IsDir() {
			add(filepath.Dir(p))
			continue
		}
		_ = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				add(path)
			}
			return nil
		})
	}
	return out
}
