package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"peer/ingress/limit"
	"peer/media"
)

// hubCollector reads the hub's counters at scrape time, so the hot path keeps no
// Prometheus state of its own.
type hubCollector struct {
	hub   *media.Hub
	limit *limit.Limiter

	streams, publishing, players, conns, refused, bytesIn, bytesOut *prometheus.Desc
}

func newHubCollector(h *media.Hub, l *limit.Limiter) *hubCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("peer_"+name, help, labels, nil)
	}
	return &hubCollector{hub: h, limit: l,
		streams:    d("streams", "Streams held by this node."),
		publishing: d("streams_publishing", "Streams with a publisher attached."),
		players:    d("players", "Players attached, per stream.", "stream"),
		conns:      d("connections", "Media sessions holding a max_connections slot."),
		refused:    d("connections_refused_total", "Media sessions refused by max_connections."),
		bytesIn:    d("stream_bytes_in_total", "Media bytes received, per stream.", "stream"),
		bytesOut:   d("stream_bytes_out_total", "Media bytes sent to players, per stream.", "stream"),
	}
}

func (c *hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.publishing, c.players, c.conns, c.refused, c.bytesIn, c.bytesOut} {
		ch <- d
	}
}

func (c *hubCollector) Collect(ch chan<- prometheus.Metric) {
	streams, _ := c.hub.Snapshot()
	publishing := 0
	for _, st := range streams {
		key := st.App + "/" + st.Name
		if st.Publishing {
			publishing++
		}
		ch <- prometheus.MustNewConstMetric(c.players, prometheus.GaugeValue, float64(st.Players), key)
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(st.BytesIn), key)
		ch <- prometheus.MustNewConstMetric(c.bytesOut, prometheus.CounterValue, float64(st.BytesOut), key)
	}
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(len(streams)))
	ch <- prometheus.MustNewConstMetric(c.publishing, prometheus.GaugeValue, float64(publishing))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(c.limit.Active()))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(c.limit.Refused()))
}

// budgetCollector reports the budgets that keep operators in control under load.
type budgetCollector struct {
	s                      *Server
	apiRefused, idleClosed *prometheus.Desc
}

func newBudgetCollector(s *Server) *budgetCollector {
	return &budgetCollector{s: s,
		apiRefused: prometheus.NewDesc("peer_api_requests_refused_total", "API requests refused by the API's concurrency budget.", nil, nil),
		idleClosed: prometheus.NewDesc("peer_http_idle_closed_total", "Idle HTTP connections closed to make room (--max-http-idle), per listener.", []string{"listener"}, nil),
	}
}

func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.apiRefused
	ch <- c.idleClosed
}

func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.apiRefused, prometheus.CounterValue, float64(c.s.api.Refused()))
	for i, name := range listenerNames {
		ch <- prometheus.MustNewConstMetric(c.idleClosed, prometheus.CounterValue, float64(c.s.idle[i].Evicted()), name)
	}
}
