// Package store keeps the registered systems: a local file for a standalone
// node, etcd for a cluster, behind one interface.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/go-websocket/go-websocket/define"
)

// Systems is the set of registered systemIds.
type Systems interface {
	// Register adds id; it returns define.ErrSystemExists when id is taken,
	// or a *define.Error with code 10009 when the backing store is down.
	Register(ctx context.Context, id string) error
	// Exists answers from memory; a miss may read the backing store once,
	// bounded by a short timeout.
	Exists(id string) bool
	// List returns every registered id, sorted.
	List() []string
	SettingsStore
}

// File keeps systems in one JSON file, rewritten atomically on every
// registration (write a temp file, fsync, rename, fsync the directory).
type File struct {
	path string
	mu   sync.RWMutex
	ids  map[string]struct{}
	// settings of the systems that have any
	settings map[string]Settings
}

type fileFormat struct {
	Systems  []string            `json:"systems"`
	Settings map[string]Settings `json:"settings,omitempty"`
}

// OpenFile loads path (a missing file is an empty set). A file that exists
// but cannot be parsed is an error: starting empty would silently drop every
// tenant.
func OpenFile(path string) (*File, error) {
	f := &File{path: path, ids: map[string]struct{}{}, settings: map[string]Settings{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("read systems file %s: %w", path, err)
	}
	var ff fileFormat
	if err := json.Unmarshal(b, &ff); err != nil {
		return nil, fmt.Errorf("systems file %s is corrupt (%v); restore it from a backup or remove it to start with no systems", path, err)
	}
	for _, id := range ff.Systems {
		f.ids[id] = struct{}{}
	}
	for id, s := range ff.Settings {
		if _, ok := f.ids[id]; ok {
			f.settings[id] = s
		}
	}
	return f, nil
}

// Register implements Systems.
func (f *File) Register(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; ok {
		return define.ErrSystemExists
	}
	f.ids[id] = struct{}{}
	if err := f.save(); err != nil {
		delete(f.ids, id)
		return fmt.Errorf("save systems: %w", err)
	}
	return nil
}

// Exists implements Systems.
func (f *File) Exists(id string) bool {
	f.mu.RLock()
	_, ok := f.ids[id]
	f.mu.RUnlock()
	return ok
}

// List implements Systems.
func (f *File) List() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedKeys(f.ids)
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// save writes the file atomically; the caller holds f.mu.
func (f *File) save() error {
	ff := fileFormat{Systems: sortedKeys(f.ids), Settings: map[string]Settings{}}
	for id, s := range f.settings {
		if s.WebhookURL != "" || len(s.WebhookEvents) > 0 || s.WebhookSecret != "" {
			ff.Settings[id] = s
		}
	}
	b, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".systems-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
