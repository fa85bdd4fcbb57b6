package app

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
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
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = w.Add(ev.Name) // a new subdirectory of a watched directory
				}
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
