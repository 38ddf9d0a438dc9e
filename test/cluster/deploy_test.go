package clustertest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/go-websocket/go-websocket/pkg/setting"
)

// TestDeployFilesAgree checks deploy/docker-compose.yml and deploy/nginx.conf
// against each other and against the configuration keys, so that a renamed
// key or service breaks a test instead of a deployment. (nginx itself runs
// deploy/nginx.conf in the process tests of ./e2e.)
func TestDeployFilesAgree(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Ports       []string          `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	keys := map[string]bool{}
	for _, k := range setting.Keys() {
		keys["GOWS_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	var nodes []string
	for name, svc := range compose.Services {
		if !strings.HasPrefix(name, "node") {
			continue
		}
		nodes = append(nodes, name)
		for env := range svc.Environment {
			if strings.HasPrefix(env, "GOWS_") && !keys[env] {
				t.Errorf("service %s: %s is not a configuration key", name, env)
			}
		}
		e := svc.Environment
		if e["GOWS_CLUSTER_ENABLED"] != "true" || e["GOWS_CLUSTER_ETCDENDPOINTS"] != "etcd:2379" ||
			e["GOWS_CLUSTER_SECRET"] == "" || e["GOWS_CLUSTER_RPCADVERTISE"] != name+":7900" {
			t.Errorf("service %s: cluster environment %v", name, e)
		}
	}
	slices.Sort(nodes)
	if !slices.Equal(nodes, []string{"node1", "node2", "node3"}) || compose.Services["etcd"].Image == "" {
		t.Fatalf("services: want etcd, node1-3 and nginx, got nodes %v", nodes)
	}
	if ng := compose.Services["nginx"]; !slices.Contains(ng.Volumes, "./nginx.conf:/etc/nginx/nginx.conf:ro") {
		t.Errorf("nginx does not mount deploy/nginx.conf: %v", ng.Volumes)
	}

	conf, err := os.ReadFile(filepath.Join(root, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var upstream []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+(\S+):7800\b`).FindAllStringSubmatch(string(conf), -1) {
		upstream = append(upstream, m[1])
	}
	if !slices.Equal(upstream, nodes) {
		t.Errorf("nginx upstream %v, compose nodes %v", upstream, nodes)
	}
	for _, want := range []string{
		"proxy_set_header Upgrade $http_upgrade;",
		"proxy_set_header Connection $connection_upgrade;",
		"proxy_http_version 1.1;",
		"location ~ ^/(api/websocket/)?ws$",
		"location /api/",
	} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
}
