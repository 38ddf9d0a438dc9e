package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
)

// snippet returns the fenced block after <!-- snippet: name --> in the
// README.
func snippet(t *testing.T, name string) string {
	t.Helper()
	root, err := nodeproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- snippet: "+name+" -->\n")
	if !ok {
		t.Fatalf("README.md has no <!-- snippet: %s -->", name)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the opening fence
	code, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("snippet %s is not closed", name)
	}
	return code + "\n"
}

// lines collects a process's output lines; wait blocks until one
// contains all of the given parts.
type lines struct {
	mu  sync.Mutex
	all []string
	ch  chan struct{}
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		l.all = append(l.all, sc.Text())
	}
	select {
	case l.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lines) wait(t *testing.T, what string, parts ...string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		l.mu.Lock()
		for _, s := range l.all {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(s, p)
			}
			if ok {
				l.mu.Unlock()
				return s
			}
		}
		l.mu.Unlock()
		select {
		case <-l.ch:
		case <-deadline:
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("%s: no line with %q; output:\n%s", what, parts, strings.Join(l.all, "\n"))
		}
	}
}

// start runs a command until the test ends; its output goes to out.
func start(t *testing.T, dir string, out *lines, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
}

// The README's Go and Node snippets run as written (only the node's and
// the webhook receiver's ports differ): the Go backend registers a system
// with a webhook, the Node client connects and sends an upstream message,
// the backend prints the events and answers with a batch, and the client
// receives it.
func TestREADMESnippets(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but npm is not installed (apt-get install nodejs npm)")
		}
		t.Skip("npm is not installed")
	}
	base := startNode(t, nil)
	root, err := nodeproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	hookPort := strconv.Itoa(nodeproc.FreePort(t))
	dir := t.TempDir()

	// The Go backend, built inside the module through an overlay.
	goSrc := strings.ReplaceAll(snippet(t, "go-sdk"), "http://127.0.0.1:7800", base)
	goSrc = strings.ReplaceAll(goSrc, "127.0.0.1:8081", "127.0.0.1:"+hookPort)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(goSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{
		filepath.Join(root, "test", "sdk", "readmesnippet", "main.go"): filepath.Join(dir, "main.go")}})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "backend")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin, "./test/sdk/readmesnippet")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the README's Go snippet does not build: %v\n%s", err, out)
	}
	backend := &lines{ch: make(chan struct{}, 1)}
	start(t, dir, backend, bin)

	// The Node client, with gows.js as the node serves it.
	npm := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", "ws@8")
	npm.Dir = dir
	if out, err := npm.CombinedOutput(); err != nil {
		t.Fatalf("npm install ws: %v\n%s", err, out)
	}
	resp, err := http.Get(base + "/gows.js")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := os.WriteFile(filepath.Join(dir, "gows.js"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	nodeSrc := strings.ReplaceAll(snippet(t, "gows-node"), "ws://127.0.0.1:7800", "ws"+strings.TrimPrefix(base, "http"))
	if err := os.WriteFile(filepath.Join(dir, "client.js"), []byte(nodeSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	// The backend registers the system before the client connects.
	for i := 0; ; i++ {
		if i == 500 {
			t.Fatal("the Go snippet did not register its system")
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/api/websocket/get_system", strings.NewReader(`{}`))
		req.Header.Set("systemId", "shop")
		if r, err := http.DefaultClient.Do(req); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &lines{ch: make(chan struct{}, 1)}
	start(t, dir, client, "node", "client.js")

	hello := client.wait(t, "the Node snippet", "connected as")
	id := strings.TrimSpace(strings.TrimPrefix(hello, "connected as"))
	backend.wait(t, "the Go snippet's connect event", "connect", id)
	backend.wait(t, "the Go snippet's message event", "message", id, `{"text":"hello backend"}`)
	backend.wait(t, "the Go snippet's batch", "batch: <nil> <nil>")
	client.wait(t, "the batch's message to the client", `message "got it"`)
	client.wait(t, "the batch's broadcast", `message {"news":"someone spoke"}`)
}
