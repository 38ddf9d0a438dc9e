package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
)

// Settings are the per-system settings kept beside the system itself: where
// and what the node posts as webhooks, and the secret that signs them.
type Settings struct {
	WebhookURL    string   `json:"webhookUrl,omitempty"`
	WebhookEvents []string `json:"webhookEvents,omitempty"`
	WebhookSecret string   `json:"webhookSecret,omitempty"`
}

// Clone returns a copy that shares nothing with s.
func (s Settings) Clone() Settings {
	s.WebhookEvents = slices.Clone(s.WebhookEvents)
	return s
}

// SettingsStore keeps the settings of registered systems.
type SettingsStore interface {
	// RegisterWith adds id together with its settings in one write; errors
	// as Register.
	RegisterWith(ctx context.Context, id string, s Settings) error
	// Settings reads the settings of id from the backing store; ok is false
	// when id is not registered. A store that cannot be reached is an error.
	Settings(ctx context.Context, id string) (s Settings, ok bool, err error)
	// UpdateSettings applies fn to the settings of id atomically and returns
	// the result; define.ErrUnknownSystem when id is not registered, fn's
	// error when it refuses the change.
	UpdateSettings(ctx context.Context, id string, fn func(*Settings) error) (Settings, error)
}

// RegisterWith implements SettingsStore.
func (f *File) RegisterWith(_ context.Context, id string, s Settings) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; ok {
		return define.ErrSystemExists
	}
	f.ids[id] = struct{}{}
	f.settings[id] = s.Clone()
	if err := f.save(); err != nil {
		delete(f.ids, id)
		delete(f.settings, id)
		return fmt.Errorf("save systems: %w", err)
	}
	return nil
}

// Settings implements SettingsStore (from memory: the file is the only writer).
func (f *File) Settings(_ context.Context, id string) (Settings, bool, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if _, ok := f.ids[id]; !ok {
		return Settings{}, false, nil
	}
	return f.settings[id].Clone(), true, nil
}

// UpdateSettings implements SettingsStore.
func (f *File) UpdateSettings(_ context.Context, id string, fn func(*Settings) error) (Settings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.ids[id]; !ok {
		return Settings{}, define.ErrUnknownSystem
	}
	old := f.settings[id]
	next := old.Clone()
	if err := fn(&next); err != nil {
		return Settings{}, err
	}
	f.settings[id] = next
	if err := f.save(); err != nil {
		f.settings[id] = old
		return Settings{}, fmt.Errorf("save systems: %w", err)
	}
	return next.Clone(), nil
}

// settingsKey is the etcd key of a system's settings, beside the systems'
// own keys: <prefix>/settings/<id>.
func (s *Etcd) settingsKey(id string) string {
	return strings.TrimSuffix(s.prefix, "systems/") + "settings/" + id
}

func (s *Etcd) unavailable(what, id string, err error) error {
	s.log.Warn(what+": etcd does not answer", zap.String("systemId", id), zap.Error(err))
	return &define.Error{Code: define.CodeUnavailable,
		Msg: "cluster unavailable: etcd does not answer, so the system's settings cannot be " + what + " now; try again later"}
}

// RegisterWith implements SettingsStore: the system's key and its settings
// are written in one transaction, only if the system does not exist.
func (s *Etcd) RegisterWith(ctx context.Context, id string, set Settings) error {
	val, err := json.Marshal(etcdValue{SystemID: id, RegisteredAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	sv, err := json.Marshal(set)
	if err != nil {
		return err
	}
	key := s.prefix + id
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(val)), clientv3.OpPut(s.settingsKey(id), string(sv))).
		Commit()
	if err != nil {
		return s.unavailable("registered", id, err)
	}
	s.mu.Lock()
	s.ids[id] = struct{}{}
	s.mu.Unlock()
	if !resp.Succeeded {
		return define.ErrSystemExists
	}
	return nil
}

// Settings implements SettingsStore; it reads etcd (callers cache).
func (s *Etcd) Settings(ctx context.Context, id string) (Settings, bool, error) {
	set, _, ok, err := s.readSettings(ctx, id)
	return set, ok, err
}

// readSettings returns the settings of id, the mod revision of their key
// (0: none stored) and whether the system exists.
func (s *Etcd) readSettings(ctx context.Context, id string) (Settings, int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+id, clientv3.WithKeysOnly()),
		clientv3.OpGet(s.settingsKey(id)),
	).Commit()
	if err != nil {
		return Settings{}, 0, false, err
	}
	if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
		return Settings{}, 0, false, nil
	}
	kvs := resp.Responses[1].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return Settings{}, 0, true, nil // registered before settings existed
	}
	var set Settings
	if err := json.Unmarshal(kvs[0].Value, &set); err != nil {
		return Settings{}, 0, false, fmt.Errorf("settings of system %q in etcd are corrupt: %w", id, err)
	}
	return set, kvs[0].ModRevision, true, nil
}

// UpdateSettings implements SettingsStore with a compare-and-swap on the
// settings key (retried a few times when another node wrote in between).
func (s *Etcd) UpdateSettings(ctx context.Context, id string, fn func(*Settings) error) (Settings, error) {
	for range 5 {
		set, rev, ok, err := s.readSettings(ctx, id)
		if err != nil {
			return Settings{}, s.unavailable("updated", id, err)
		}
		if !ok {
			return Settings{}, define.ErrUnknownSystem
		}
		if err := fn(&set); err != nil {
			return Settings{}, err
		}
		sv, err := json.Marshal(set)
		if err != nil {
			return Settings{}, err
		}
		key := s.settingsKey(id)
		tctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.cli.Txn(tctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", rev),
				clientv3.Compare(clientv3.CreateRevision(s.prefix+id), ">", 0)).
			Then(clientv3.OpPut(key, string(sv))).
			Commit()
		cancel()
		if err != nil {
			return Settings{}, s.unavailable("updated", id, err)
		}
		if resp.Succeeded {
			return set, nil
		}
	}
	return Settings{}, &define.Error{Code: define.CodeUnavailable, Msg: "the system's settings changed concurrently; try again"}
}
