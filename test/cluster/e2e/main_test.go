// Package e2e tests cluster mode with separate processes: a real etcd
// server, three go-websocket node processes built from this repository, and
// a real nginx in front of them configured from deploy/nginx.conf (ports
// templated into a copy). Clients connect through nginx and the API is
// called through nginx, as in production.
//
// The tests need the etcd and nginx binaries (Debian: etcd-server, nginx).
// Without them they skip, unless CI is set: then they fail.
//
// Run: GOTOOLCHAIN=go1.27.3 go test -race -count=1 ./test/cluster/e2e/
// Set E2E_GOWS_BIN to a prebuilt binary to skip the build.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-websocket/go-websocket/test/internal/clusterfix"
	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"go.uber.org/goleak"
)

var (
	repoRoot string
	binPath  string
	// missing names the absent tools; "" when everything is there.
	missing string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	root, err := nodeproc.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	missing = clusterfix.Missing("etcd", "nginx")
	if missing == "" || os.Getenv("CI") != "" {
		bin, cleanup, err := nodeproc.ServerBinary(root, "E2E_GOWS_BIN", "gows-cluster-e2e-")
		defer cleanup()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		binPath = bin
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked by the test process:", err)
			code = 1
		}
	}
	return code
}

// requireTools skips the test when etcd or nginx is absent, except in CI.
func requireTools(t *testing.T) {
	t.Helper()
	clusterfix.Require(t, "etcd", "nginx")
}
