package setting

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/viper"
)

// iniCodec teaches viper (which no longer ships an INI decoder) the small INI
// dialect of conf.ini: [section] headers, key = value lines, and whole-line
// comments starting with ; or #. Keys outside a section are an error, as are
// duplicate keys, so a typo cannot silently shadow a setting.
type iniCodec struct{}

func (iniCodec) Encode(map[string]any) ([]byte, error) {
	return nil, errors.New("writing INI is not supported")
}

func (iniCodec) Decode(b []byte, v map[string]any) error {
	return decodeINI(b, v)
}

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
	reg := viper.NewCodecRegistry()
	if err := reg.RegisterCodec("ini", iniCodec{}); err != nil {
		panic(err) // only fails for an empty format name
	}
	return viper.NewWithOptions(viper.WithCodecRegistry(reg))
}
