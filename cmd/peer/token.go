package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"peer/conf"
	"peer/ingress/admit"
	"peer/media"
)

// tokenCmd mints a signed ?token= for a publisher or a player. It reads the same keys as
// the node (--token-publish-key / --token-play-key, PEER_* or --config, where an app's own
// key in the apps section wins as it does at the node), so
// `peer --config peer.yaml token publish live/test` needs nothing else.
type tokenCmd struct {
	Kind  string        `arg:"" enum:"publish,play" help:"publish or play."`
	Scope string        `arg:"" help:"APP/STREAM, or APP/* for every stream of an app."`
	TTL   time.Duration `help:"How long the token is valid." default:"24h"`

	TokenPublishKey string `help:"The node's publish token key." env:"PEER_TOKEN_PUBLISH_KEY"`
	TokenPlayKey    string `help:"The node's play token key." env:"PEER_TOKEN_PLAY_KEY"`

	apps map[string]conf.AppSettings // the --config file's apps section
}

func (c *tokenCmd) Run() error {
	app, stream, ok := strings.Cut(c.Scope, "/")
	if !ok || app == "" || stream == "" {
		return errors.New("scope must be APP/STREAM or APP/*")
	}
	key, appKey := c.TokenPublishKey, c.apps[app].TokenPublishKey
	if c.Kind == admit.KindPlay {
		key, appKey = c.TokenPlayKey, c.apps[app].TokenPlayKey
	}
	if appKey != nil {
		key = *appKey
	}
	if key == "" {
		return fmt.Errorf("no %s key: give --token-%s-key (or PEER_TOKEN_%s_KEY, or --config)", c.Kind, c.Kind, map[string]string{"publish": "PUBLISH", "play": "PLAY"}[c.Kind])
	}
	if err := media.ValidateName(app); err != nil {
		return fmt.Errorf("app %q: %w", app, err)
	}
	if stream != "*" {
		if err := media.ValidateName(stream); err != nil {
			return fmt.Errorf("stream %q: %w", stream, err)
		}
	}
	if c.TTL <= 0 {
		return errors.New("--ttl must be positive")
	}
	tok := admit.MintToken([]byte(key), c.Kind, c.Scope, time.Now().Add(c.TTL))
	fmt.Println(tok)
	return nil
}
