package setting

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/viper"
)

// decodeINI reads the small INI dialect of conf.ini into v (section ->
// key -> value, both lower case): [section] headers, key = value lines, and
// whole-line comments starting with ; or #. Keys outside a section are an
// error, as are duplicate keys, so a typo cannot silently shadow a setting.
func decodeINI(b []byte, v map[string]any) error {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var section map[string]any
	var sectionName string
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if line == 1 {
			s = strings.TrimPrefix(s, "\ufeff")
		}
		if s == "" || s[0] == ';' || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") || len(s) < 3 {
				return fmt.Errorf("line %d: malformed section header %q", line, s)
			}
			sectionName = strings.ToLower(strings.TrimSpace(s[1 : len(s)-1]))
			if sectionName == "" || strings.ContainsAny(sectionName, ". ") {
				return fmt.Errorf("line %d: bad section name %q", line, s)
			}
			if existing, ok := v[sectionName].(map[string]any); ok {
				section = existing
			} else {
				section = map[string]any{}
				v[sectionName] = section
			}
			continue
		}
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("line %d: expected key = value, got %q", line, s)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		if key == "" || strings.ContainsAny(key, ". []") {
			return fmt.Errorf("line %d: bad key %q", line, key)
		}
		if section == nil {
			return fmt.Errorf("line %d: key %q is outside any [section]", line, key)
		}
		if _, dup := section[key]; dup {
			return fmt.Errorf("line %d: key %s.%s set twice", line, sectionName, key)
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		section[key] = val
	}
	return sc.Err()
}

func newViper() *viper.Viper {
	return viper.New()
}

// readINIFile reads and decodes the ini file at path.
func readINIFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := map[string]any{}
	if err := decodeINI(b, v); err != nil {
		return nil, err
	}
	return v, nil
}

// legacyKeys maps the keys of woodylan/go-websocket's conf/app.ini to the
// keys that replace them ("" = no longer used).
var legacyKeys = []struct{ old, new string }{
	{"common.HttpPort", "server.httpPort"},
	{"common.RPCPort", "server.rpcPort"},
	{"common.Cluster", "cluster.enabled"},
	{"common.CryptoKey", ""},
	{"etcd.Endpoints", "cluster.etcdEndpoints"},
}

// translateLegacy moves the keys of an older configuration format in file
// to their new names and returns one warning per key. A key of an old
// section that has no new name is left in place (and then refused as
// unknown).
func translateLegacy(file map[string]any) []string {
	var warnings []string
	for _, l := range legacyKeys {
		oldSection, oldKey, _ := strings.Cut(strings.ToLower(l.old), ".")
		sec, ok := file[oldSection].(map[string]any)
		if !ok {
			continue
		}
		val, ok := sec[oldKey]
		if !ok {
			continue
		}
		delete(sec, oldKey)
		if l.new == "" {
			warnings = append(warnings, fmt.Sprintf("config key %s (woodylan/go-websocket) is ignored: clientIds are authenticated by server.secret, or cluster.secret in a cluster", l.old))
			continue
		}
		newSection, newKey, _ := strings.Cut(strings.ToLower(l.new), ".")
		dst, ok := file[newSection].(map[string]any)
		if !ok {
			dst = map[string]any{}
			file[newSection] = dst
		}
		if _, set := dst[newKey]; set {
			warnings = append(warnings, fmt.Sprintf("config key %s (woodylan/go-websocket) is ignored: %s is set too", l.old, l.new))
			continue
		}
		dst[newKey] = val
		warnings = append(warnings, fmt.Sprintf("config key %s (woodylan/go-websocket) is read as %s: rename it", l.old, l.new))
	}
	for _, s := range []string{"common", "etcd"} {
		if sec, ok := file[s].(map[string]any); ok && len(sec) == 0 {
			delete(file, s)
		}
	}
	return warnings
}
