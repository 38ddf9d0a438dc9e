package clusterfix

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

func TestEtcdStopAndRestart(t *testing.T) {
	Require(t, "etcd")
	e := StartEtcd(t)
	cli := e.Client()
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if e.Running() {
		t.Fatal("etcd still running after Stop")
	}
	e.Restart()
	r, err := cli.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after a restart on the same data: %v %v", r, err)
	}
}

func TestNginxInFrontOfUpstreams(t *testing.T) {
	Require(t, "nginx")
	root, err := nodeproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("upstream " + r.URL.Path)) }))
	defer up.Close()
	n := StartNginx(t, root, []string{strings.TrimPrefix(up.URL, "http://")}, "max_fails=1 fail_timeout=5s")
	resp, err := http.Get(n.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz through nginx: HTTP %d", resp.StatusCode)
	}
	if conf := n.Log() + n.ErrorLog(); strings.Contains(conf, "[emerg]") {
		t.Errorf("nginx: %s", conf)
	}
}

func TestNodeOf(t *testing.T) {
	// version byte, node id 010203040506, then anything
	if got := NodeOf(t, "AAECAwQFBgcI"); got != "010203040506" {
		t.Errorf("NodeOf = %s", got)
	}
}
