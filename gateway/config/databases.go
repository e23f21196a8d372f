package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The database drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

var drivers = []string{DriverSQLite, DriverPostgres}

// Database names are what scripts pass to db.query and friends; variable
// names are what dsn_env may hold.
var (
	dbName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// dbRef is a database an endpoint names, checked against the top-level
// `databases:` once the whole file is read (it may come after).
type dbRef struct {
	name  string
	line  int
	field string
}

// databases decodes the top-level `databases` mapping: name -> settings,
// in the file's order.
func (d *decoder) databases(n *yaml.Node, path string) []Database {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "must be a mapping of database names to their settings, got %s", describe(n))
		return nil
	}
	var out []Database
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		name, ok := d.scalar(key, path, "a database name", "!!str")
		if !ok {
			continue
		}
		field := join(path, name)
		switch {
		case !dbName.MatchString(name):
			d.fail(key, field, "a database name is letters, digits, _ and -, starting with a letter or _")
			continue
		case seen[name]:
			d.fail(key, field, "given twice")
			continue
		}
		seen[name] = true
		out = append(out, d.database(key, val, name, field))
	}
	return out
}

// database decodes the settings of one database; key is its name's node.
func (d *decoder) database(key, n *yaml.Node, name, path string) Database {
	db := Database{Line: key.Line, Name: name, Timeout: DefaultDBTimeout}
	var dsnNode *yaml.Node
	seen := d.fields(n, path, map[string]func(*yaml.Node, string){
		"driver": func(v *yaml.Node, f string) { db.Driver = d.driver(v, f) },
		"dsn": func(v *yaml.Node, f string) {
			dsnNode = v
			db.DSN = d.str(v, f, "a file path (sqlite) or a URL (postgres)")
			if db.DSN == "" && v.Tag == "!!str" {
				d.fail(v, f, "must not be empty")
			}
		},
		"dsn_env": func(v *yaml.Node, f string) {
			s, ok := d.scalar(v, f, "the name of an environment variable", "!!str")
			if ok && !envName.MatchString(s) {
				d.fail(v, f, "must be the name of an environment variable, like MOONGATE_DB_URL, got %q", s)
			}
			db.DSNEnv = s
		},
		"pool":    func(v *yaml.Node, f string) { db.Pool = int(d.integer(v, f, 1, 1000)) },
		"timeout": func(v *yaml.Node, f string) { db.Timeout = d.duration(v, f, msec, 10*time.Minute) },
	})
	if n.Kind != yaml.MappingNode {
		return db
	}
	if !seen["driver"] {
		d.fail(n, join(path, "driver"), `missing: every database needs a driver, "sqlite" or "postgres"`)
	}
	switch {
	case seen["dsn"] && seen["dsn_env"]:
		d.fail(n, path, "give dsn or dsn_env, not both")
	case !seen["dsn"] && !seen["dsn_env"]:
		d.fail(n, join(path, "dsn"), "missing: every database needs a dsn, or a dsn_env naming the variable that holds it")
	case seen["dsn"] && db.DSN != "":
		switch db.Driver {
		case DriverSQLite:
			db.DSN = resolveSQLite(d.dir, db.DSN)
		case DriverPostgres:
			if err := checkPostgresDSN(db.DSN); err != nil {
				d.fail(dsnNode, join(path, "dsn"), "%v", err)
			}
		}
	}
	return db
}

// driver decodes a database's driver, suggesting the one a typo meant.
func (d *decoder) driver(n *yaml.Node, field string) string {
	s, ok := d.scalar(n, field, `"sqlite" or "postgres"`, "!!str")
	if !ok || slices.Contains(drivers, s) {
		return s
	}
	msg := fmt.Sprintf(`must be "sqlite" or "postgres", got %q`, s)
	if sug := Suggest(strings.ToLower(s), append(drivers, "postgresql")); sug != "" {
		if sug == "postgresql" {
			sug = DriverPostgres
		}
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	}
	d.fail(n, field, "%s", msg)
	return s
}

// resolveSQLite resolves a SQLite file path against dir; ":memory:" and
// file: URIs are left as they are.
func resolveSQLite(dir, dsn string) string {
	if dsn == ":memory:" || strings.HasPrefix(dsn, "file:") {
		return dsn
	}
	if !filepath.IsAbs(dsn) {
		dsn = filepath.Join(dir, dsn)
	}
	return filepath.Clean(dsn)
}

// checkPostgresDSN catches what is plainly not a PostgreSQL DSN: a URL of
// another scheme, or one without a host. A key=value DSN is left to the
// driver, which checks it when the database is opened.
func checkPostgresDSN(dsn string) error {
	scheme, _, isURL := strings.Cut(dsn, "://")
	if !isURL {
		return nil
	}
	if scheme != "postgres" && scheme != "postgresql" {
		return fmt.Errorf(`must be a postgres:// URL or a "key=value ..." string, got a %s:// URL`, scheme)
	}
	if _, err := url.Parse(dsn); err != nil {
		return fmt.Errorf("not a valid URL: %v", unwrapURLError(err))
	}
	return nil
}

// unwrapURLError drops url.Error's repetition of the URL, which may hold a
// password.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// databaseRefs decodes an endpoint's `databases` list of names.
func (d *decoder) databaseRefs(n *yaml.Node, field string) []string {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, field, "must be a list of database names, got %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		name, ok := d.scalar(item, f, "a database name", "!!str")
		switch {
		case !ok:
			continue
		case slices.Contains(out, name):
			d.fail(item, f, "%q is named twice", name)
			continue
		}
		out = append(out, name)
		d.dbRefs = append(d.dbRefs, dbRef{name: name, line: item.Line, field: f})
	}
	if len(out) == 0 {
		return nil // as if not given: `databases: []` restarts nothing
	}
	return out
}

// checkDatabaseRefs reports the databases endpoints name that the
// top-level `databases:` does not declare.
func (d *decoder) checkDatabaseRefs(cfg *Config) {
	known := make([]string, len(cfg.Databases))
	for i, db := range cfg.Databases {
		known[i] = db.Name
	}
	for _, r := range d.dbRefs {
		if slices.Contains(known, r.name) {
			continue
		}
		msg := fmt.Sprintf("no database %q is declared under the top-level databases:", r.name)
		switch s := Suggest(r.name, known); {
		case s != "":
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		case len(known) == 0:
			msg = fmt.Sprintf("no database %q: the config declares no databases (see the top-level databases:)", r.name)
		default:
			msg += fmt.Sprintf(" (it declares %s)", strings.Join(known, ", "))
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: r.line, Field: r.field, Msg: msg})
	}
}

// http decodes an endpoint's `http` mapping into h.
func (d *decoder) http(n *yaml.Node, path string, h *HTTP) {
	d.fields(n, path, map[string]func(*yaml.Node, string){
		"allow": func(v *yaml.Node, f string) {
			h.Allow = d.strings(v, f)
			if v.Kind != yaml.SequenceNode {
				return
			}
			for i, item := range v.Content {
				if i < len(h.Allow) && item.Kind == yaml.ScalarNode && item.Tag == "!!str" {
					if err := checkURLPrefix(h.Allow[i]); err != nil {
						d.fail(item, fmt.Sprintf("%s[%d]", f, i), "%v", err)
					}
				}
			}
		},
		"timeout":            func(v *yaml.Node, f string) { h.Timeout = d.duration(v, f, msec, 10*time.Minute) },
		"max_response_bytes": func(v *yaml.Node, f string) { h.MaxResponseBytes = d.size(v, f, 1, 1<<30) },
	})
}

// checkURLPrefix accepts an absolute http or https URL with a host, and no
// user, query or fragment: the start of the URLs a script may call.
func checkURLPrefix(s string) error {
	const want = `must be an http:// or https:// URL prefix with a host, like "https://api.example.com/v1/"`
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s, got %q: %v", want, s, unwrapURLError(err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Hostname() == "":
		return fmt.Errorf("%s, got %q", want, s)
	case u.User != nil:
		return fmt.Errorf("must not hold a user or password, got %q", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Errorf("must not hold a query or fragment (a prefix covers them), got %q", s)
	}
	return nil
}

// Database returns the database declared under name, if any.
func (c *Config) Database(name string) (Database, bool) {
	for _, d := range c.Databases {
		if d.Name == name {
			return d, true
		}
	}
	return Database{}, false
}

// DSN returns the DSN to open d with: d.DSN, or the value of the
// environment variable d.DSNEnv names, read now (a SQLite path in it is
// resolved against the config file's folder, as a dsn in the file is). It
// is an error, naming the variable, when that variable is unset or empty.
func (c *Config) DSN(d Database) (string, error) {
	if d.DSNEnv == "" {
		return d.DSN, nil
	}
	v, ok := os.LookupEnv(d.DSNEnv)
	switch {
	case !ok:
		return "", fmt.Errorf("database %q: dsn_env: the environment variable %s is not set", d.Name, d.DSNEnv)
	case v == "":
		return "", fmt.Errorf("database %q: dsn_env: the environment variable %s is empty", d.Name, d.DSNEnv)
	}
	if d.Driver == DriverSQLite {
		v = resolveSQLite(filepath.Dir(c.File), v)
	}
	return v, nil
}
