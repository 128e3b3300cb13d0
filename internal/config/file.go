package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// fileError is a mistake at one line of the configuration file.
type fileError struct {
	line int
	msg  string
	hint string // how to fix it, when known
}

func (e *fileError) Error() string { return e.msg }

func errorAt(n *yaml.Node, format string, args ...any) error {
	return &fileError{line: n.Line, msg: fmt.Sprintf(format, args...)}
}

// loadFile reads the YAML file at path over cfg. Keys are the options'
// YAML keys; values are read as their flags would read them (so sizes take
// units and durations need one). Unknown keys are errors.
func loadFile(cfg *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if err := decodeDocument(cfg, &doc); err != nil {
		var fe *fileError
		if errors.As(err, &fe) {
			if fe.hint != "" {
				return fmt.Errorf("%s in file %s line %d: %s", fe.msg, path, fe.line, fe.hint)
			}
			return fmt.Errorf("%s in file %s line %d", fe.msg, path, fe.line)
		}
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func decodeDocument(cfg *Config, doc *yaml.Node) error {
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return errorAt(root, "the file must hold options like \"http_addr: 127.0.0.1:8080\", one a line")
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if err := decodeKey(cfg, root.Content[i], root.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// decodeKey sets the option of one top-level key.
func decodeKey(cfg *Config, k, v *yaml.Node) error {
	if o, ok := optionByKey(k.Value); ok {
		return decodeOption(cfg, o, v)
	}
	if f, ok := yamlField(reflect.ValueOf(cfg).Elem(), k.Value); ok {
		return decodeValue(v, f, k.Value)
	}
	return unknownKey(k, configKeys())
}

// decodeOption reads a value as the option's flag would.
func decodeOption(cfg *Config, o option, v *yaml.Node) error {
	switch {
	case v.Kind == yaml.ScalarNode:
		if o.reset != nil {
			o.reset(cfg)
		}
		if err := o.set(cfg, scalar(v)); err != nil {
			return errorAt(v, "%s: %v", o.key, err)
		}
		return nil
	case v.Kind == yaml.SequenceNode && o.reset != nil:
		o.reset(cfg)
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return errorAt(item, "%s: each item must be a single value", o.key)
			}
			if err := o.set(cfg, scalar(item)); err != nil {
				return errorAt(item, "%s: %v", o.key, err)
			}
		}
		return nil
	case o.reset != nil:
		return errorAt(v, "%s must be a list, like [a, b]", o.key)
	}
	return errorAt(v, "%s must be a single value, like %s: %s", o.key, o.key, o.show(new(Config)))
}

// scalar returns a scalar's text; null (an empty value) is "".
func scalar(n *yaml.Node) string {
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

var durationType = reflect.TypeFor[time.Duration]()

// decodeValue reads a YAML-only setting (credentials) into v, refusing
// unknown keys at every level. name says where the value is, for errors.
func decodeValue(n *yaml.Node, v reflect.Value, name string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch v.Kind() {
	case reflect.Struct:
		return decodeStruct(n, v, name)
	case reflect.Slice:
		return decodeSlice(n, v, name)
	case reflect.Map:
		return decodeMap(n, v, name)
	}
	if n.Kind != yaml.ScalarNode {
		return errorAt(n, "%s must be a single value", name)
	}
	return decodeScalar(n, v, name)
}

func decodeStruct(n *yaml.Node, v reflect.Value, name string) error {
	if n.Kind != yaml.MappingNode {
		return errorAt(n, "%s must hold keys (%s)", name, strings.Join(fieldKeys(v.Type()), ", "))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		f, ok := yamlField(v, k.Value)
		if !ok {
			return unknownKey(k, fieldKeys(v.Type()))
		}
		if err := decodeValue(n.Content[i+1], f, name+"."+k.Value); err != nil {
			return err
		}
	}
	return nil
}

func decodeSlice(n *yaml.Node, v reflect.Value, name string) error {
	if n.Tag == "!!null" {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return errorAt(n, "%s must be a list", name)
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		if err := decodeValue(item, s.Index(i), fmt.Sprintf("%s[%d]", name, i)); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

func decodeMap(n *yaml.Node, v reflect.Value, name string) error {
	m := reflect.MakeMap(v.Type())
	v.Set(m)
	if n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errorAt(n, "%s must hold key: value lines", name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return errorAt(k, "%s: a key must be a single value", name)
		}
		val := reflect.New(v.Type().Elem()).Elem()
		if err := decodeValue(n.Content[i+1], val, name+"."+k.Value); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), val)
	}
	return nil
}

// decodeScalar reads a single value into a string, boolean, number or
// duration.
func decodeScalar(n *yaml.Node, v reflect.Value, name string) error {
	s := scalar(n)
	var err error
	switch {
	case v.Type() == durationType:
		var d time.Duration
		if d, err = time.ParseDuration(s); err == nil {
			v.SetInt(int64(d))
		} else {
			err = fmt.Errorf("%q is not a duration like 45s (units ms, s, m, h)", s)
		}
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Bool:
		var b bool
		if b, err = strconv.ParseBool(s); err == nil {
			v.SetBool(b)
		} else {
			err = fmt.Errorf("%q is not a boolean: use true or false", s)
		}
	case v.CanInt():
		var i int64
		if i, err = strconv.ParseInt(s, 10, 64); err == nil && !v.OverflowInt(i) {
			v.SetInt(i)
		} else {
			err = fmt.Errorf("%q is not a whole number", s)
		}
	case v.CanFloat():
		var f float64
		if f, err = strconv.ParseFloat(s, 64); err == nil {
			v.SetFloat(f)
		} else {
			err = fmt.Errorf("%q is not a number", s)
		}
	default:
		err = fmt.Errorf("cannot be set in the file")
	}
	if err != nil {
		return errorAt(n, "%s: %v", name, err)
	}
	return nil
}

// yamlField returns the field of struct v whose yaml tag is key.
func yamlField(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tagKey(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagKey(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// fieldKeys lists the yaml keys of struct type t.
func fieldKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := tagKey(t.Field(i)); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// configKeys lists every key of the configuration file.
func configKeys() []string { return fieldKeys(reflect.TypeFor[Config]()) }

// unknownKey names an unknown key and, when one is close, the key meant.
func unknownKey(k *yaml.Node, known []string) error {
	best, bestDist := "", 3
	for _, key := range known {
		if d := editDistance(k.Value, key); d < bestDist {
			best, bestDist = key, d
		}
	}
	err := &fileError{line: k.Line, msg: fmt.Sprintf("unknown option %s", k.Value)}
	if best != "" {
		err.hint = "did you mean " + best + "?"
	}
	return err
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
