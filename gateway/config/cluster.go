package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
)

// Cluster is the top-level `cluster:` section: the Redis server the nodes
// of a cluster share, and this node's name. Without it (nil) the gateway
// runs alone, with rooms and the store in process.
type Cluster struct {
	Line     int    // where the section is in the file
	Redis    string // redis:// or rediss:// URL of the server
	RedisEnv string // the environment variable holding the URL, instead of Redis
	Node     string // this node's name, unique in the cluster; default: host name and pid
	// Prefix starts every key the cluster keeps in Redis (default "mg"):
	// two clusters may share one server under different prefixes.
	Prefix string
}

// DefaultClusterPrefix starts a cluster's Redis keys when the config names
// no prefix.
const DefaultClusterPrefix = "mg"

// clusterPrefix is what a prefix may be.
var clusterPrefix = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// nodeName is what a node may be called: it appears in Redis keys and logs.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DefaultNodeName is a node's name when the config gives none: the host
// name and the process id, unique on a machine and across restarts.
func DefaultNodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	name := fmt.Sprintf("%s-%d", host, os.Getpid())
	if !nodeName.MatchString(name) {
		name = fmt.Sprintf("node-%d", os.Getpid())
	}
	return name
}

// cluster decodes the `cluster` section.
func (d *decoder) cluster(n *yaml.Node, path string) *Cluster {
	c := &Cluster{Line: n.Line, Prefix: DefaultClusterPrefix}
	seen := d.fields(n, path, map[string]func(*yaml.Node, string){
		"redis": func(v *yaml.Node, f string) {
			c.Redis = d.str(v, f, "a redis:// URL")
			if c.Redis != "" {
				if err := checkRedisURL(c.Redis); err != nil {
					d.fail(v, f, "%v", err)
				}
			}
		},
		"redis_env": func(v *yaml.Node, f string) {
			s, ok := d.scalar(v, f, "the name of an environment variable", "!!str")
			if ok && !envName.MatchString(s) {
				d.fail(v, f, "must be the name of an environment variable, like MOONGATE_REDIS_URL, got %q", s)
			}
			c.RedisEnv = s
		},
		"prefix": func(v *yaml.Node, f string) {
			s, ok := d.scalar(v, f, "a key prefix", "!!str")
			if ok && !clusterPrefix.MatchString(s) {
				d.fail(v, f, "a prefix is 1 to 64 letters, digits, '.', '_' or '-', got %q", s)
			}
			c.Prefix = s
		},
		"node": func(v *yaml.Node, f string) {
			s, ok := d.scalar(v, f, "a node name", "!!str")
			if ok && !nodeName.MatchString(s) {
				d.fail(v, f, "a node name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", s)
			}
			c.Node = s
		},
	})
	if n.Kind != yaml.MappingNode {
		return c
	}
	switch {
	case seen["redis"] && seen["redis_env"]:
		d.fail(n, path, "give redis or redis_env, not both")
	case !seen["redis"] && !seen["redis_env"]:
		d.fail(n, join(path, "redis"), `missing: a cluster needs its Redis server, like redis: "redis://127.0.0.1:6379/0", or redis_env naming the variable that holds the URL`)
	}
	if c.Node == "" {
		c.Node = DefaultNodeName()
	}
	return c
}

// checkRedisURL checks what go-redis will be given, without its parser:
// the scheme and a host.
func checkRedisURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			return fmt.Errorf("a Redis URL names its host, like redis://127.0.0.1:6379/0")
		}
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("a unix URL names the socket's path, like unix:///run/redis.sock")
		}
	default:
		return fmt.Errorf("a Redis URL starts with redis://, rediss:// or unix://, got %q", s)
	}
	return nil
}

// RedisURL returns the URL of the cluster's Redis server: Redis, or the
// value of the variable RedisEnv names.
func (c *Cluster) RedisURL() (string, error) {
	if c.RedisEnv == "" {
		return c.Redis, nil
	}
	v := os.Getenv(c.RedisEnv)
	if v == "" {
		return "", fmt.Errorf("cluster.redis_env: the environment variable %s is not set", c.RedisEnv)
	}
	if err := checkRedisURL(v); err != nil {
		return "", fmt.Errorf("cluster.redis_env: %s: %w", c.RedisEnv, err)
	}
	return v, nil
}

// Check checks what the command line may set (-cluster, -node), with the
// flag's name in the error.
func (c *Cluster) Check() error {
	if c.Redis == "" && c.RedisEnv == "" {
		return fmt.Errorf("-node, -cluster-prefix: a cluster needs its Redis server: give -cluster URL")
	}
	if c.Redis != "" {
		if err := checkRedisURL(c.Redis); err != nil {
			return fmt.Errorf("-cluster: %w", err)
		}
	}
	if !clusterPrefix.MatchString(c.Prefix) {
		return fmt.Errorf("-cluster-prefix: a prefix is 1 to 64 letters, digits, '.', '_' or '-', got %q", c.Prefix)
	}
	if !nodeName.MatchString(c.Node) {
		return fmt.Errorf("-node: a node name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, got %q", c.Node)
	}
	return nil
}
