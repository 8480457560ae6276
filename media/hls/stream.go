package hls

import (
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
)

// Packaging packages the streams of a media hub as HLS: its New is a media.NewPackager.
// A stream whose source is a media.Copy follows the cut markers of its source's packager
// (the master's); an origin's packager decides the cuts and sends them to the links.
type Packaging struct {
	// Muxer is each stream's muxer settings (Fragment, Window, MaxSegmentBytes); Dir,
	// PlaylistFile, URIPrefix, Follow, OnCut and OnSegment are set per stream.
	Muxer Config
	// ForApp, when set, adjusts a copy of Muxer for a new stream of app.
	ForApp func(app string, c *Config)
	// Dir, when set, also holds every stream's files: DIR/app/name.m3u8 listing
	// name/N.ts, the layout the HTTP URLs have.
	Dir string
	// Idle > 0 packages a copy (a replica's or an edge's) only while HLS was requested
	// here in the last Idle (media.Stream.WatchedWithin): each node carrying a stream
	// would otherwise package it whether or not anyone plays HLS there. An origin's
	// stream always packages. 0: every stream, always (needed when Dir is served by
	// another program).
	Idle time.Duration
	// OnSegment, when set, is told of each segment an origin's stream finishes (copies'
	// never are): its number, URI (as in the playlist) and duration.
	OnSegment func(app, name string, seq uint64, uri string, dur time.Duration)
	Log       *zap.Logger
}

// DefaultPackaging packages 2 s segments, 6 to a playlist, and copies only while asked.
func DefaultPackaging() Packaging {
	return Packaging{Muxer: Config{Fragment: defaultFragment, Window: defaultWindow}, Idle: 30 * time.Second}
}

// New makes the HLS packager of stream s.
func (pk Packaging) New(s *media.Stream) media.Packager {
	cfg := pk.Muxer
	if pk.ForApp != nil {
		pk.ForApp(s.App, &cfg)
	}
	p := &packager{s: s, idle: pk.Idle}
	cfg.OnCut = p.holdCut
	if f := pk.OnSegment; f != nil {
		app, name := s.App, s.Name
		cfg.OnSegment = func(seq uint64, uri string, dur time.Duration) { f(app, name, seq, uri, dur) }
	}
	cfg.URIPrefix = s.Name + "/"
	if pk.Dir != "" {
		cfg.Dir = filepath.Join(pk.Dir, s.App, s.Name)
		cfg.PlaylistFile = "../" + s.Name + ".m3u8"
	}
	log := pk.Log
	if log == nil {
		log = zap.NewNop()
	}
	p.m = New(cfg, log.With(zap.String("stream", s.Key())))
	return p
}

// packager is a stream's Muxer as the media core drives it.
type packager struct {
	m      *Muxer
	s      *media.Stream
	idle   time.Duration
	follow bool
	cut    *flv.Tag // the marker the leader's Cut made in Before
}

func (p *packager) holdCut(m *flv.Tag) { p.cut = m }

// Before makes a leader's cut decision at t: the marker goes out ahead of t, to the
// stream's links, before t is packaged.
func (p *packager) Before(t *flv.Tag) *flv.Tag {
	p.m.Cut(t)
	c := p.cut
	p.cut = nil
	return c
}

// Write packages t; a follower nobody asked HLS of sleeps (see Packaging.Idle).
func (p *packager) Write(t *flv.Tag) {
	if p.follow && p.idle > 0 {
		if p.s.WatchedWithin(p.idle) {
			p.m.Wake()
		} else {
			p.m.Sleep()
		}
	}
	p.m.Mux(t)
}

func (p *packager) IsControl(data []byte) bool { return IsCutMarkerData(data) }

// Attach makes the muxer a follower of a copy's cut markers, or the leader.
func (p *packager) Attach(src media.Source) {
	p.follow = src == media.Copy
	p.m.SetFollow(p.follow)
}

func (p *packager) Discontinuity() { p.m.Discontinuity() }

func (p *packager) Close() { p.m.Close() }

// Of returns the HLS muxer attached to s, or nil.
func Of(s *media.Stream) *Muxer {
	for _, pk := range s.Packagers() {
		if p, ok := pk.(*packager); ok {
			return p.m
		}
	}
	return nil
}

// Watch returns the stream and its muxer for an HLS request and notes the request
// (media.Hub.Watch): a stream this node still serves a playlist of (a publisher that
// just left keeps its window until the stream is dropped), or one the hub knows of,
// created if need be; otherwise media.ErrNoStream.
func Watch(h *media.Hub, app, name string) (*media.Stream, *Muxer, error) {
	if s := h.Lookup(app, name); s != nil {
		if m := Of(s); m != nil {
			if _, ok := m.Playlist(); ok {
				s.Watched()
				return s, m, nil
			}
		}
	}
	s, err := h.Watch(app, name)
	if err != nil {
		return nil, nil, err
	}
	m := Of(s)
	if m == nil {
		return nil, nil, media.ErrNoStream // a hub that packages no HLS
	}
	return s, m, nil
}
