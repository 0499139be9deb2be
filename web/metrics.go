package web

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus collectors, on a registry of its own
// (never the global default one), so that two Servers in one process (as
// in tests) do not collide.
type metrics struct {
	reg      *prometheus.Registry
	events   *prometheus.CounterVec   // by outcome
	renders  *prometheus.CounterVec   // by page
	scans    prometheus.Counter       // history page views counted as scans
	proofs   *prometheus.CounterVec   // by kind
	requests *prometheus.CounterVec   // by route, method and status
	duration *prometheus.HistogramVec // by route
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_events_submitted_total",
			Help: "Events submitted to POST /api/v1/events, by outcome: accepted, duplicate, or the error code (rate_limited, overloaded and storage_full for writes turned away).",
		}, []string{"outcome"}),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_page_renders_total",
			Help: "HTML pages rendered, by page.",
		}, []string{"page"}),
		scans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "provtrail_scans_total",
			Help: "History pages opened (each counts as one scan of the item).",
		}),
		proofs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_proofs_served_total",
			Help: "Proofs served, by kind: receipt (tlog-proof of a new event), bundle, history (page or JSON with inclusion proofs).",
		}, []string{"kind"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "provtrail_http_requests_total",
			Help: "HTTP requests, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "provtrail_http_request_duration_seconds",
			Help:    "HTTP request duration, by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.events, m.renders, m.scans, m.proofs, m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
