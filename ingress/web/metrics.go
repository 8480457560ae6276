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
		conns:      d("connections", "Client connections holding a slot."),
		refused:    d("connections_refused_total", "Connections refused by max_connections."),
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
