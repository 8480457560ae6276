package conf

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/alecthomas/kong"
	"go.yaml.in/yaml/v3"

	"peer/media"
)

// AppSettings overrides node-wide settings for the streams of one app: the config file's
// `apps:` section. A nil field is not set by the file, and the app takes the node-wide
// value (from the file, a flag or PEER_*); flags and PEER_* never override an app's own
// value. A hook list set to [] turns that hook off for the app.
//
// Each field has the name of the Node field it overrides, and its `flag` tag is the flag
// whose name and parser its key shares.
type AppSettings struct {
	HLSFragment  *time.Duration `flag:"hls-fragment"`
	HLSWindow    *int           `flag:"hls-window"`
	GOPCacheTime *time.Duration `flag:"gop-cache-time"`
	PlayerQueue  *int           `flag:"player-queue"`
	MergeWrite   *time.Duration `flag:"merge-write"`
	Pull         *string        `flag:"pull"`
	PullIdle     *time.Duration `flag:"pull-idle"`

	TokenPublishKey *string        `flag:"token-publish-key"`
	TokenPlayKey    *string        `flag:"token-play-key"`
	OnConnect       []string       `flag:"on-connect"`
	OnPublish       []string       `flag:"on-publish"`
	OnUnpublish     []string       `flag:"on-unpublish"`
	OnPlay          []string       `flag:"on-play"`
	OnStop          []string       `flag:"on-stop"`
	OnHLS           []string       `flag:"on-hls"`
	HookTimeout     *time.Duration `flag:"hook-timeout"`
}

// ForApp is n with the settings of app's entry in Apps applied; n itself without one.
func (n Node) ForApp(app string) Node {
	s, ok := n.Apps[app]
	if !ok {
		return n
	}
	sv, nv := reflect.ValueOf(s), reflect.ValueOf(&n).Elem()
	for i := 0; i < sv.NumField(); i++ {
		f := sv.Field(i)
		if f.IsNil() {
			continue
		}
		dst := nv.FieldByName(sv.Type().Field(i).Name)
		if f.Kind() == reflect.Pointer {
			f = f.Elem()
		}
		dst.Set(f)
	}
	return n
}

// appKeys is the field index of each key an app may set, by flag name.
func appKeys() map[string]int {
	t := reflect.TypeOf(AppSettings{})
	keys := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		keys[t.Field(i).Tag.Get("flag")] = i
	}
	return keys
}

// parseApps reads the `apps:` mapping: app name -> mapping of per-app keys, each value
// parsed as the flag of the same name.
func parseApps(path string, v *yaml.Node, flags map[string]*kong.Flag) (map[string]AppSettings, FileErrors) {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" { // "apps:" with nothing under it
		return map[string]AppSettings{}, nil
	}
	if v.Kind != yaml.MappingNode {
		return nil, FileErrors{{path, v.Line, "apps: want a mapping of app name to settings"}}
	}
	keys := appKeys()
	allowed := make(map[string]*kong.Flag, len(keys))
	for k := range keys {
		allowed[k] = flags[k]
	}
	apps := map[string]AppSettings{}
	var errs FileErrors
	for i := 0; i+1 < len(v.Content); i += 2 {
		name, body := v.Content[i], v.Content[i+1]
		err := media.ValidateName(name.Value)
		if name.Kind != yaml.ScalarNode {
			err = errors.New("want a plain name")
		}
		if err != nil {
			errs = append(errs, FileError{path, name.Line, fmt.Sprintf("apps: bad app name %q: %v", name.Value, err)})
			continue
		}
		if _, dup := apps[name.Value]; dup {
			errs = append(errs, FileError{path, name.Line, fmt.Sprintf("apps: %s is set twice", name.Value)})
			continue
		}
		if body.Kind != yaml.MappingNode {
			errs = append(errs, FileError{path, body.Line, fmt.Sprintf("apps: %s: want a mapping of settings (key: value)", name.Value)})
			continue
		}
		var s AppSettings
		sv := reflect.ValueOf(&s).Elem()
		seen := map[string]bool{}
		for j := 0; j+1 < len(body.Content); j += 2 {
			k, val := body.Content[j], body.Content[j+1]
			where := "apps: " + name.Value + ": "
			fl, ok := allowed[k.Value]
			switch {
			case !ok:
				errs = append(errs, FileError{path, k.Line, fmt.Sprintf("%sunknown per-app setting %q%s", where, k.Value, suggest(k.Value, allowed))})
				continue
			case seen[k.Value]:
				errs = append(errs, FileError{path, k.Line, fmt.Sprintf("%s%s is set twice", where, k.Value)})
				continue
			}
			seen[k.Value] = true
			parsed, err := appValue(fl, val)
			if err != nil {
				errs = append(errs, FileError{path, val.Line, fmt.Sprintf("%s%s: %v", where, k.Value, err)})
				continue
			}
			f := sv.Field(keys[k.Value])
			if f.Kind() == reflect.Pointer {
				p := reflect.New(f.Type().Elem())
				p.Elem().Set(parsed)
				parsed = p
			}
			f.Set(parsed)
		}
		apps[name.Value] = s
	}
	return apps, errs
}

// appValue parses one per-app value as its flag would; an empty list is an empty, not
// an unset, hook list.
func appValue(fl *kong.Flag, v *yaml.Node) (reflect.Value, error) {
	if v.Kind == yaml.SequenceNode && len(v.Content) == 0 && fl.IsSlice() {
		return reflect.MakeSlice(fl.Target.Type(), 0, 0), nil
	}
	s, err := scalarOrList(fl, v)
	if err != nil {
		return reflect.Value{}, err
	}
	return decodeValue(fl, s)
}
