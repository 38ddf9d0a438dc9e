package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-websocket/go-websocket/define"
)

func TestFileRegisterPersists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "systems.json")
	f, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := f.Register(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := f.Register(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Register(ctx, "a"); !errors.Is(err, define.ErrSystemExists) {
		t.Fatalf("second register: %v", err)
	}
	g, err := OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.List(), ","); got != "a,b" {
		t.Fatalf("reloaded %q", got)
	}
	if !g.Exists("a") || g.Exists("c") {
		t.Fatal("Exists wrong")
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temp files left behind: %v", entries)
	}
}

func TestFileCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "systems.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFile(p); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt file accepted: %v", err)
	}
}

func TestFileConcurrentRegisterOneWins(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "systems.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if f.Register(context.Background(), "x") == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d registrations succeeded", wins)
	}
}
