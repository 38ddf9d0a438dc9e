// Package docs runs the shell recipes of the README and docs/ as a reader
// would, against the built server, and checks that the documents refer only
// to files that exist.
//
// A fenced sh block runs when the line before its fence is a marker:
//
//	<!-- test: node -->     the reader has a node running as `make run`
//	                        starts it (./go-websocket -c conf.ini, port
//	                        7800): the test starts it, runs the block, stops it
//	<!-- test: NAME -->     blocks with the same NAME, in document order,
//	                        run as one script that starts and stops everything
//	                        it needs (for example "cluster": etcd, three nodes,
//	                        nginx, then the block that stops them)
//
// Every script runs with bash -e -o pipefail in a new temporary directory
// holding the built binary as ./go-websocket, conf.ini and deploy/, as if it
// were the repository. A script needing a program that is not installed
// (etcd, nginx, openssl) skips with a message naming it; .ci/install-deps.sh
// installs them.
//
// Run: GOTOOLCHAIN=go1.27.3 go test -count=1 ./test/docs/
package docs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-websocket/go-websocket/test/internal/nodeproc"
	"github.com/go-websocket/go-websocket/test/internal/wstest"
)

var (
	repoRoot string
	binPath  string
)

func TestMain(m *testing.M) {
	os.Exit(nodeproc.RunSuite(m, nodeproc.Suite{Name: "docs", BinEnv: "E2E_GOWS_BIN", TmpPattern: "gows-docs-bin-"},
		func(root, _, bin string) { repoRoot, binPath = root, bin }))
}

// block is one fenced code block of a document.
type block struct {
	doc, marker, lang, text string
	line                    int
}

var markerRe = regexp.MustCompile(`^<!-- test: ([a-z0-9-]+) -->$`)

// readBlocks returns the fenced blocks of doc (a path under the repository).
func readBlocks(t *testing.T, doc string) []block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, doc))
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	prev := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trim, "```"):
			cur = &block{doc: doc, lang: strings.TrimPrefix(trim, "```"), line: n}
			if m := markerRe.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.marker = m[1]
			}
		case cur != nil && trim == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
		prev = line
	}
	if cur != nil {
		t.Fatalf("%s: the block at line %d is not closed", doc, cur.line)
	}
	return out
}

// docs are the documents whose recipes run.
var docs = []string{"README.md", "docs/CLUSTER.md", "docs/MIGRATING.md", "docs/BENCHMARKS.md", "web/README.md"}

// markedBlocks groups the marked blocks by marker and document: the blocks
// of one marker in one document form one script.
func markedBlocks(t *testing.T) map[string][][]block {
	groups := map[string][][]block{}
	for _, d := range docs {
		perDoc := map[string][]block{}
		var order []string
		for _, b := range readBlocks(t, d) {
			if b.marker == "" {
				continue
			}
			if b.lang != "sh" {
				t.Fatalf("%s:%d: a marked block must be sh, not %q", b.doc, b.line, b.lang)
			}
			if perDoc[b.marker] == nil {
				order = append(order, b.marker)
			}
			perDoc[b.marker] = append(perDoc[b.marker], b)
		}
		for _, m := range order {
			groups[m] = append(groups[m], perDoc[m])
		}
	}
	return groups
}

// workDir prepares a directory that looks like the repository to a recipe.
func workDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, binPath, filepath.Join(dir, "go-websocket"), 0o755)
	copyFile(t, filepath.Join(repoRoot, "conf.ini"), filepath.Join(dir, "conf.ini"), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(repoRoot, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			copyFile(t, filepath.Join(repoRoot, "deploy", e.Name()), filepath.Join(dir, "deploy", e.Name()), 0o644)
		}
	}
	return dir
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// needs skips the test when a program a recipe uses is not installed.
func needs(t *testing.T, script string) {
	t.Helper()
	for _, prog := range []string{"etcd", "nginx", "openssl", "curl"} {
		if regexp.MustCompile(`(^|[\s(|;&$])` + prog + `\s`).MatchString(script) {
			if _, err := exec.LookPath(prog); err != nil {
				t.Skipf("%s is not installed (.ci/install-deps.sh installs the test dependencies)", prog)
			}
		}
	}
}

// ports are the fixed ports the recipes use; they must be free before a
// recipe runs and free again after it stopped what it started.
var ports = []int{7800, 7801, 7802, 7803, 7901, 7902, 7903, 8080, 2379, 2380}

func portsInUse(used []int) []int {
	var busy []int
	for _, p := range used {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 200*time.Millisecond)
		if err == nil {
			c.Close()
			busy = append(busy, p)
		}
	}
	return busy
}

func usedPorts(script string) []int {
	var used []int
	for _, p := range ports {
		if strings.Contains(script, strconv.Itoa(p)) || (p != 7800 && p/100 == 78 && strings.Contains(script, "780$i")) ||
			(p/100 == 79 && strings.Contains(script, "790$i")) || (p == 8080 && strings.Contains(script, "nginx")) ||
			((p == 2379 || p == 2380) && strings.Contains(script, "etcd ")) {
			used = append(used, p)
		}
	}
	return used
}

// run runs script in dir with bash -e -o pipefail, bounded by timeout, and
// returns its output. The process group is killed if it outlives the
// timeout.
func run(t *testing.T, dir, script string, timeout time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = nodeproc.Env(map[string]string{"GOTOOLCHAIN": "go1.27.3"})
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("still running after %v", timeout)
	}
	return out.String(), err
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// killLeftovers waits (at most 20 s) for every process whose PID a recipe
// wrote into a *.pid file under dir to exit, then stops (SIGKILL) those
// still running: a failed recipe must not leave servers on the fixed ports.
// It returns the names of the files whose process had to be killed.
func killLeftovers(dir string) []string {
	pids := map[string]int{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pid") {
			return nil
		}
		b, _ := os.ReadFile(p)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			pids[filepath.Base(p)] = pid
		}
		return nil
	})
	if wstest.Poll(20*time.Second, func() bool {
		for _, pid := range pids {
			if running(pid) {
				return false
			}
		}
		return true
	}) {
		return nil
	}
	var left []string
	for name, pid := range pids {
		if running(pid) {
			left = append(left, name)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	slices.Sort(left)
	return left
}

func TestMarkedRecipes(t *testing.T) {
	groups := markedBlocks(t)
	for _, want := range []string{"node", "cluster", "tls"} {
		if len(groups[want]) == 0 {
			t.Errorf("no block is marked <!-- test: %s -->", want)
		}
	}
	names := make([]string, 0, len(groups))
	for name := range groups {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, blocks := range groups[name] {
				if name == "node" {
					for _, b := range blocks {
						t.Run(fmt.Sprintf("%s:%d", b.doc, b.line), func(t *testing.T) { runWithNode(t, b) })
					}
					continue
				}
				var script strings.Builder
				var where []string
				for _, b := range blocks {
					script.WriteString(b.text)
					where = append(where, fmt.Sprintf("%s:%d", b.doc, b.line))
				}
				if seen[script.String()] {
					continue // the same recipe in another document
				}
				seen[script.String()] = true
				t.Run(where[0], func(t *testing.T) { runScript(t, strings.Join(where, ", "), script.String()) })
			}
		})
	}
}

// runScript runs blocks that start and stop what they need.
func runScript(t *testing.T, where, script string) {
	needs(t, script)
	used := usedPorts(script)
	if busy := portsInUse(used); len(busy) > 0 {
		t.Fatalf("%s: ports %v are in use; the recipe uses fixed ports", where, busy)
	}
	dir := workDir(t)
	out, err := run(t, dir, script, 3*time.Minute)
	left := killLeftovers(dir)
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", where, err, out)
	}
	if len(left) > 0 {
		t.Errorf("%s: processes still running after the recipe (it must stop what it started): %v\n%s", where, left, out)
	}
	// What the recipe stopped must have let go of its ports.
	wstest.Poll(20*time.Second, func() bool { return len(portsInUse(used)) == 0 })
	if busy := portsInUse(used); len(busy) > 0 {
		t.Errorf("%s: ports %v still in use after the recipe stopped its processes", where, busy)
	}
	if strings.Contains(out, `"code":100`) || strings.Contains(out, "not ready") {
		t.Errorf("%s: an error answer in the output:\n%s", where, out)
	}
	t.Logf("%s:\n%s", where, out)
}

// runWithNode starts the node as `make run` does, runs the block, stops it.
func runWithNode(t *testing.T, b block) {
	needs(t, b.text)
	if busy := portsInUse([]int{7800}); len(busy) > 0 {
		t.Fatalf("port 7800 is in use; the README's node listens there")
	}
	dir := workDir(t)
	node, err := nodeproc.Launch(t, nodeproc.Spec{Bin: filepath.Join(dir, "go-websocket"), Args: []string{"-c", "conf.ini"},
		Env: map[string]string{"GOWS_SERVER_HOST": "127.0.0.1"}, Dir: dir, Port: 7800, ReadyPath: "/readyz", ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("the node did not become ready: %v", err)
	}
	defer node.Stop()
	out, err := run(t, dir, b.text, time.Minute)
	if err != nil {
		t.Fatalf("%s:%d failed: %v\n%s", b.doc, b.line, err, out)
	}
	if strings.Contains(out, `"code":10001`) || strings.Contains(out, `"code":10003`) {
		t.Errorf("%s:%d: an error answer in the output:\n%s", b.doc, b.line, out)
	}
	t.Logf("%s:%d:\n%s", b.doc, b.line, out)
}

// The README and docs/CLUSTER.md give one cluster recipe, not two.
func TestOneClusterRecipe(t *testing.T) {
	var texts []string
	for _, d := range []string{"README.md", "docs/CLUSTER.md"} {
		var s strings.Builder
		for _, b := range readBlocks(t, d) {
			if b.marker == "cluster" {
				s.WriteString(b.text)
			}
		}
		if s.Len() == 0 {
			t.Fatalf("%s has no block marked <!-- test: cluster -->", d)
		}
		texts = append(texts, s.String())
	}
	if texts[0] != texts[1] {
		t.Errorf("the cluster recipes of README.md and docs/CLUSTER.md differ:\n--- README.md\n%s\n--- docs/CLUSTER.md\n%s", texts[0], texts[1])
	}
	if !strings.Contains(texts[0], "/readyz") || !strings.Contains(texts[0], "kill $(cat") {
		t.Error("the cluster recipe must wait on /readyz and stop what it started by PID")
	}
}

// Every document of the repository refers only to documents that exist.
func TestDocumentsReferToExistingFiles(t *testing.T) {
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "*.md").Output()
	if err != nil {
		t.Skipf("git ls-files: %v", err)
	}
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	mention := regexp.MustCompile("`((?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+\\.md)`|(?:^|\\s)((?:[A-Za-z0-9_-]+/)+[A-Za-z0-9_.-]+\\.md)\\b")
	for _, doc := range strings.Fields(string(out)) {
		b, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			continue // listed by git but removed in the working tree
		}
		for n, line := range strings.Split(string(b), "\n") {
			var refs []string
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				if !strings.Contains(m[1], "://") && !strings.HasPrefix(m[1], "mailto:") {
					refs = append(refs, m[1])
				}
			}
			for _, m := range mention.FindAllStringSubmatch(line, -1) {
				refs = append(refs, m[1]+m[2])
			}
			for _, ref := range refs {
				if !exists(doc, ref) {
					t.Errorf("%s:%d refers to %s, which is not in the repository", doc, n+1, ref)
				}
			}
		}
	}
}

// exists resolves ref relative to the document, then to the repository root.
func exists(doc, ref string) bool {
	for _, p := range []string{filepath.Join(repoRoot, filepath.Dir(doc), ref), filepath.Join(repoRoot, ref)} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

// Bare go commands fail where go.env says GOTOOLCHAIN=local: a document
// with a go command says what to export, or sets it on the line.
func TestGoCommandsNameTheToolchain(t *testing.T) {
	goCmd := regexp.MustCompile(`^\s*(?:[A-Z_]+=\S+\s+)*go\s+(build|test|run|install|vet|generate|mod)\b`)
	for _, doc := range []string{"README.md", "docs/MIGRATING.md", "docs/BENCHMARKS.md", "web/README.md", "tools/wsbench/README.md"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, doc))
		if err != nil {
			t.Fatal(err)
		}
		exported := strings.Contains(string(b), "export GOTOOLCHAIN=go1.27.3")
		for _, bl := range readBlocks(t, doc) {
			for i, line := range strings.Split(bl.text, "\n") {
				if goCmd.MatchString(line) && !exported && !strings.Contains(line, "GOTOOLCHAIN=go1.27.3") {
					t.Errorf("%s:%d: %q needs GOTOOLCHAIN=go1.27.3 (or the document's export)", doc, bl.line+1+i, strings.TrimSpace(line))
				}
			}
		}
	}
	readme, _ := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if !strings.Contains(string(readme), "export GOTOOLCHAIN=go1.27.3") {
		t.Error("README.md does not say to export GOTOOLCHAIN=go1.27.3 for bare go commands")
	}
}
