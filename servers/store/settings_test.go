package store

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdtest"
)

// checkSettings runs the same checks on any SettingsStore; reopen returns a
// second view of the same backing store (a restart, or another node).
func checkSettings(t *testing.T, s Systems, reopen func() Systems) {
	t.Helper()
	ctx := context.Background()
	want := Settings{WebhookURL: "http://127.0.0.1:9/hook", WebhookEvents: []string{"connect", "join"}, WebhookSecret: "k1"}
	if err := s.RegisterWith(ctx, "w", want); err != nil {
		t.Fatal(err)
	}
	if err := s.RegisterWith(ctx, "w", Settings{}); !errors.Is(err, define.ErrSystemExists) {
		t.Fatalf("second register: %v", err)
	}
	if err := s.Register(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if !s.Exists("w") {
		t.Fatal("registered system does not exist")
	}
	got, ok, err := s.Settings(ctx, "w")
	if err != nil || !ok || !reflect.DeepEqual(got, want) {
		t.Fatalf("Settings = %+v %v %v, want %+v", got, ok, err, want)
	}
	if got, ok, err := s.Settings(ctx, "plain"); err != nil || !ok || !reflect.DeepEqual(got, Settings{}) {
		t.Fatalf("plain system: %+v %v %v", got, ok, err)
	}
	if _, ok, err := s.Settings(ctx, "nope"); err != nil || ok {
		t.Fatalf("unknown system: %v %v", ok, err)
	}
	up, err := s.UpdateSettings(ctx, "w", func(x *Settings) error { x.WebhookEvents = []string{"message"}; return nil })
	if err != nil || up.WebhookURL != want.WebhookURL || !reflect.DeepEqual(up.WebhookEvents, []string{"message"}) {
		t.Fatalf("update: %+v %v", up, err)
	}
	refuse := errors.New("no")
	if _, err := s.UpdateSettings(ctx, "w", func(x *Settings) error { x.WebhookURL = ""; return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("refused update: %v", err)
	}
	if _, err := s.UpdateSettings(ctx, "nope", func(*Settings) error { return nil }); !errors.Is(err, define.ErrUnknownSystem) {
		t.Fatalf("update of unknown system: %v", err)
	}
	if _, err := s.UpdateSettings(ctx, "plain", func(x *Settings) error { x.WebhookSecret = "k2"; return nil }); err != nil {
		t.Fatal(err)
	}
	r := reopen()
	got, ok, err = r.Settings(ctx, "w")
	if err != nil || !ok || got.WebhookURL != want.WebhookURL || !reflect.DeepEqual(got.WebhookEvents, []string{"message"}) || got.WebhookSecret != "k1" {
		t.Fatalf("reopened: %+v %v %v", got, ok, err)
	}
	if got, _, _ := r.Settings(ctx, "plain"); got.WebhookSecret != "k2" {
		t.Fatalf("reopened plain: %+v", got)
	}
}

func TestFileSettings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "systems.json")
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	checkSettings(t, f, func() Systems {
		g, err := OpenFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.List()) != 2 {
			t.Fatalf("reopened list %v", g.List())
		}
		return g
	})
}

func TestEtcdSettings(t *testing.T) {
	srv := etcdtest.Start(t)
	a := openEtcd(t, srv.Client(t), "/ts/")
	checkSettings(t, a, func() Systems { return openEtcd(t, srv.Client(t), "/ts") })
}
