package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCluster(t *testing.T) {
	file := filepath.Join(workdir(t), "c.yaml")
	cfg, err := Parse(file, []byte(`endpoints:
  - path: /echo
    script: echo.lua
cluster:
  redis: "redis://127.0.0.1:6379/0"
  node: a1
  prefix: chat-prod
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Cluster{Line: 5, Redis: "redis://127.0.0.1:6379/0", Node: "a1", Prefix: "chat-prod"}
	if cfg.Cluster == nil || *cfg.Cluster != want {
		t.Fatalf("cluster = %+v, want %+v", cfg.Cluster, want)
	}

	cfg, err = Parse(file, []byte("endpoints:\n  - {path: /echo, script: echo.lua}\ncluster: {redis_env: MY_REDIS}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Cluster; c.Node != DefaultNodeName() || c.Prefix != "mg" || c.RedisEnv != "MY_REDIS" {
		t.Errorf("defaults: %+v", c)
	}
	t.Setenv("MY_REDIS", "redis://10.0.0.1:6380/2")
	if u, err := cfg.Cluster.RedisURL(); err != nil || u != "redis://10.0.0.1:6380/2" {
		t.Errorf("RedisURL from the environment: %q %v", u, err)
	}
	t.Setenv("MY_REDIS", "")
	if _, err := cfg.Cluster.RedisURL(); err == nil || !strings.Contains(err.Error(), "MY_REDIS is not set") {
		t.Errorf("unset variable: %v", err)
	}
}

func TestClusterErrors(t *testing.T) {
	file := filepath.Join(workdir(t), "c.yaml")
	for _, tc := range []struct{ section, want string }{
		{"cluster: {}", `c.yaml:3: cluster.redis: missing`},
		{"cluster: {redis: \"http://x\"}", `c.yaml:3: cluster.redis: a Redis URL starts with redis://`},
		{"cluster: {redis: \"redis://\"}", `c.yaml:3: cluster.redis: a Redis URL names its host`},
		{"cluster: {redis: \"redis://h\", redis_env: R}", `c.yaml:3: cluster: give redis or redis_env, not both`},
		{"cluster: {redis: \"redis://h\", node: \"a b\"}", `c.yaml:3: cluster.node: a node name is`},
		{"cluster: {redis: \"redis://h\", prefix: \"a:b\"}", `c.yaml:3: cluster.prefix: a prefix is`},
		{"cluster: {redis: \"redis://h\", nodes: 3}", `c.yaml:3: cluster: unknown field "nodes" (did you mean "node"?)`},
		{"cluster: redis://h", `c.yaml:3: cluster`},
	} {
		_, err := Parse(file, []byte("endpoints:\n  - {path: /echo, script: echo.lua}\n"+tc.section+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.section, err, tc.want)
		}
	}
}
