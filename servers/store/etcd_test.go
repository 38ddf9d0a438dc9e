package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/go-websocket/go-websocket/define"
	"github.com/go-websocket/go-websocket/servers/cluster/etcdtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openEtcd(t *testing.T, cli *clientv3.Client, prefix string) *Etcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := OpenEtcd(ctx, cli, prefix, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond (bounded) and fails with what.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEtcdRegisterSharedAndPersistent(t *testing.T) {
	srv := etcdtest.Start(t)
	a := openEtcd(t, srv.Client(t), "/t1/")
	b := openEtcd(t, srv.Client(t), "/t1")
	ctx := context.Background()
	if err := a.Register(ctx, "sys/1"); err != nil {
		t.Fatal(err)
	}
	if !a.Exists("sys/1") {
		t.Fatal("the registering node does not see its system at once")
	}
	eventually(t, 5*time.Second, "the other node sees the system", func() bool { return b.Exists("sys/1") })
	if err := b.Register(ctx, "sys/1"); !errors.Is(err, define.ErrSystemExists) {
		t.Fatalf("second register: %v, want 10004", err)
	}
	if err := b.Register(ctx, "sys-2"); err != nil {
		t.Fatal(err)
	}
	// A node started later (a restart) loads both.
	c := openEtcd(t, srv.Client(t), "/t1")
	if got := strings.Join(c.List(), ","); got != "sys-2,sys/1" {
		t.Fatalf("List after reopen = %q", got)
	}
	// Another prefix is another cluster.
	if other := openEtcd(t, srv.Client(t), "/t2"); other.Exists("sys/1") {
		t.Fatal("a system leaked into another key prefix")
	}
}

func TestEtcdConcurrentRegisterOneWins(t *testing.T) {
	srv := etcdtest.Start(t)
	stores := []*Etcd{openEtcd(t, srv.Client(t), "/c"), openEtcd(t, srv.Client(t), "/c")}
	for round := range 20 {
		id := fmt.Sprintf("race-%d", round)
		errs := make([]error, len(stores))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = s.Register(context.Background(), id)
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, define.ErrSystemExists):
			default:
				t.Fatalf("round %d: unexpected error %v", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d registrations succeeded, want exactly 1 (%v)", round, wins, errs)
		}
	}
}

func TestEtcdOutage(t *testing.T) {
	srv := etcdtest.Start(t)
	s := openEtcd(t, srv.Client(t), "/o")
	other := srv.Client(t)
	if err := s.Register(context.Background(), "before"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	start := time.Now()
	err := s.Register(context.Background(), "during")
	var de *define.Error
	if !errors.As(err, &de) || de.Code != define.CodeUnavailable {
		t.Fatalf("register while etcd is down: %v, want 10009", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("register while etcd is down took %v", d)
	}
	if !s.Exists("before") {
		t.Fatal("the cache lost a system while etcd is down")
	}
	srv.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := other.Put(ctx, "/o/systems/after", `{"systemId":"after"}`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the watch resumes after etcd restarts", func() bool { return s.Exists("after") })
	eventually(t, 10*time.Second, "register works again", func() bool {
		return s.Register(context.Background(), "later") == nil
	})
}

// TestEtcdWatchCompacted starts the watch at a compacted revision: the
// store must notice and reload instead of missing changes.
func TestEtcdWatchCompacted(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	s := openEtcd(t, cli, "/k")
	s.Close() // stop the running watch; start one by hand below
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/k/systems/x", "{}"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Put(ctx, "/k/systems/y", "{}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	go s.watch(1)
	eventually(t, 10*time.Second, "reload after compaction", func() bool { return s.Exists("x") && s.Exists("y") })
	if _, err := cli.Delete(ctx, "/k/systems/x"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a deleted system disappears", func() bool { return !s.Exists("x") })
}
