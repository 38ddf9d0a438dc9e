package setting

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Field describes one configuration key, as declared by the struct tags of
// the section structs.
type Field struct {
	Section string // [section] name in conf.ini, e.g. "server"
	Key     string // key name in conf.ini, e.g. "httpPort"
	Default string // built-in default, in conf.ini syntax
	Help    string // one line for --help
	Env     string // environment variable, e.g. GOWS_SERVER_HTTPPORT

	lower string // "server.httpport", viper's spelling
	index []int  // path of the field in Config
	kind  reflect.Type
	min   string
	check string
	oneof []string
}

// Name is the key as messages spell it: section.key.
func (f Field) Name() string { return f.Section + "." + f.Key }

// Fields lists every configuration key in declaration order.
func Fields() []Field { return append([]Field(nil), fields...) }

var (
	durationType = reflect.TypeFor[time.Duration]()
	fields       = collectFields()
	byLower      = index(func(f Field) string { return f.lower })
	byEnv        = index(func(f Field) string { return f.Env })
)

func index(key func(Field) string) map[string]Field {
	m := make(map[string]Field, len(fields))
	for _, f := range fields {
		m[key(f)] = f
	}
	return m
}

// collectFields reads the tags of Config; a malformed declaration panics at
// start-up (and in every test), so it cannot ship.
func collectFields() []Field {
	var out []Field
	ct := reflect.TypeFor[Config]()
	seen := map[string]bool{}
	for i := range ct.NumField() {
		sf := ct.Field(i)
		if !sf.IsExported() {
			continue
		}
		section := sf.Tag.Get("ini")
		if section == "" || sf.Type.Kind() != reflect.Struct {
			panic(fmt.Sprintf("setting: Config.%s needs an ini tag and a struct type", sf.Name))
		}
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			key := kf.Tag.Get("ini")
			def, hasDefault := kf.Tag.Lookup("default")
			if key == "" || !hasDefault || kf.Tag.Get("help") == "" {
				panic(fmt.Sprintf("setting: %s.%s needs ini, default and help tags", sf.Name, kf.Name))
			}
			f := Field{
				Section: section,
				Key:     key,
				Default: def,
				Help:    kf.Tag.Get("help"),
				Env:     EnvPrefix + "_" + strings.ToUpper(section) + "_" + strings.ToUpper(key),
				lower:   strings.ToLower(section + "." + key),
				index:   []int{i, j},
				kind:    kf.Type,
				min:     kf.Tag.Get("min"),
				check:   kf.Tag.Get("check"),
			}
			if o := kf.Tag.Get("oneof"); o != "" {
				f.oneof = strings.Fields(o)
			}
			if seen[f.lower] {
				panic("setting: key declared twice: " + f.Name())
			}
			seen[f.lower] = true
			out = append(out, f)
		}
	}
	// Every default must parse: a bad tag fails here, not on a user's machine.
	for _, f := range out {
		p := &parser{v: viper.New()}
		p.v.Set(f.lower, f.Default)
		p.set(&Config{}, f)
		if p.err != nil {
			panic("setting: default of " + f.Name() + ": " + p.err.Error())
		}
	}
	return out
}

// parser converts keys and remembers the first error, named by its key.
type parser struct {
	v   *viper.Viper
	err error
}

func (p *parser) fail(f Field, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("config key %s: %s", f.Name(), fmt.Sprintf(format, args...))
	}
}

// set parses the value of f and stores it in c.
func (p *parser) set(c *Config, f Field) {
	s := strings.TrimSpace(fmt.Sprint(p.v.Get(f.lower)))
	dst := reflect.ValueOf(c).Elem().FieldByIndex(f.index)
	switch {
	case f.kind == durationType:
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			p.fail(f, "%q is not a duration (e.g. 500ms, 25s, 2m)", s)
		case d < 0 || (d == 0 && f.min != "0s"):
			p.fail(f, "%s must be positive", s)
		}
		dst.SetInt(int64(d))
	case f.kind.Kind() == reflect.String:
		if f.oneof != nil {
			s = strings.ToLower(s)
			ok := false
			for _, a := range f.oneof {
				ok = ok || s == a
			}
			if !ok {
				p.fail(f, "%q is not one of %s", s, strings.Join(f.oneof, ", "))
			}
		}
		dst.SetString(s)
	case f.kind.Kind() == reflect.Int || f.kind.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
		if err != nil || (f.kind.Kind() == reflect.Int && int64(int(n)) != n) {
			p.fail(f, "%q is not an integer", s)
			return
		}
		if f.min != "" {
			if m, _ := strconv.ParseInt(f.min, 10, 64); n < m {
				p.fail(f, "%d is below the minimum %d", n, m)
			}
		}
		if f.check == "port" && (n < 1 || n > 65535) {
			p.fail(f, "%d is not a port (1-65535)", n)
		}
		dst.SetInt(n)
	case f.kind.Kind() == reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "1", "yes", "on":
			dst.SetBool(true)
		case "false", "0", "no", "off", "":
			dst.SetBool(false)
		default:
			p.fail(f, "%q is not a boolean (true or false)", s)
		}
	case f.kind.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			p.fail(f, "%q is not a number", s)
		}
		dst.SetFloat(x)
	case f.kind == reflect.TypeFor[[]string]():
		var out []string
		for _, e := range strings.Split(s, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
		dst.Set(reflect.ValueOf(out))
	default:
		panic("setting: unsupported type " + f.kind.String() + " of " + f.Name())
	}
}

// Help lists every key for --help: section, key, default (durations with
// their unit), environment variable and help text.
func Help() string {
	var b strings.Builder
	section := ""
	for _, f := range fields {
		if f.Section != section {
			section = f.Section
			fmt.Fprintf(&b, "\n  [%s]\n", section)
		}
		def := f.Default
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(&b, "  %s = %s  (%s)\n      %s\n", f.Key, def, f.Env, f.Help)
	}
	return b.String()
}
