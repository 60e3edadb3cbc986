// Command pushclient drives the gateway with the official Go client's push package, one step
// per run, so tests/go_client.rs can check what the gateway stored between the steps.
//
// It is built in GOPATH mode against Debian's packaged client_golang sources
// (golang-github-prometheus-client-golang-dev), with no network:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o pushclient ./tests/go/pushclient
//
// Usage: pushclient -url http://127.0.0.1:9091 -step push|add|replace|clash|delete
// [-user alice -password secret]. A step the gateway refuses exits with status 3 and the
// client's error on stderr.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

var (
	url      = flag.String("url", "", "the gateway's base URL")
	step     = flag.String("step", "", "push, add, replace, clash or delete")
	user     = flag.String("user", "", "basic auth user (none if empty)")
	password = flag.String("password", "", "basic auth password")
)

// batchGroup is the group most steps write: values with '/' and empty values go into the URL
// as base64, a value with a space as url.QueryEscape writes it ("host+1").
func batchGroup() *push.Pusher {
	p := push.New(*url, "go_batch").
		Grouping("path", "/var/tmp").
		Grouping("empty", "").
		Grouping("instance", "host 1")
	if *user != "" {
		p = p.BasicAuth(*user, *password)
	}
	return p
}

// nightlyGroup has a job name with a '/', which the client writes as job@base64.
func nightlyGroup() *push.Pusher {
	p := push.New(*url, "nightly/backup")
	if *user != "" {
		p = p.BasicAuth(*user, *password)
	}
	return p
}

func run() error {
	switch *step {
	case "push":
		// PUT: the whole group is replaced by a counter vector, a gauge, a histogram and a
		// summary.
		processed := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_records_processed_total",
			Help: "Records processed by the batch job.",
		}, []string{"kind"})
		processed.WithLabelValues("insert").Add(7)
		processed.WithLabelValues("update").Add(2.5)
		lastSuccess := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_last_success_timestamp_seconds",
			Help: "When the batch job last succeeded.",
		})
		lastSuccess.Set(1.7e9)
		duration := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "go_job_duration_seconds",
			Help:    "How long the batch job ran.",
			Buckets: []float64{0.1, 1, 10},
		})
		for _, v := range []float64{0.05, 0.5, 0.7, 3, 30} {
			duration.Observe(v)
		}
		latency := prometheus.NewSummary(prometheus.SummaryOpts{
			Name:       "go_request_latency_seconds",
			Help:       "Latency of the job's requests.",
			Objectives: map[float64]float64{0.5: 0.05},
		})
		latency.Observe(2)
		if err := batchGroup().Collector(processed).Collector(lastSuccess).
			Collector(duration).Collector(latency).Push(); err != nil {
			return err
		}
		size := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_backup_size_bytes",
			Help: "Size of the last backup.",
		})
		size.Set(123456789)
		return nightlyGroup().Collector(size).Push()
	case "add":
		// POST: only the families in the push are replaced, the others stay.
		processed := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "go_records_processed_total",
			Help: "Records processed by the batch job.",
		}, []string{"kind"})
		processed.WithLabelValues("insert").Add(10)
		written := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_records_written",
			Help: "Records written in the last run.",
		})
		written.Set(42)
		return batchGroup().Collector(processed).Collector(written).Add()
	case "replace":
		// PUT again with one gauge: everything else in the group goes.
		written := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_records_written",
			Help: "Records written in the last run.",
		})
		written.Set(1)
		return batchGroup().Collector(written).Push()
	case "clash":
		// A gauge under the name another group holds as a counter: refused with 400.
		clash := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_records_processed_total",
			Help: "Wrong type on purpose.",
		})
		clash.Set(1)
		p := push.New(*url, "go_clash")
		if *user != "" {
			p = p.BasicAuth(*user, *password)
		}
		return p.Collector(clash).Push()
	case "delete":
		// DELETE: the client accepts nothing but 202.
		return batchGroup().Delete()
	default:
		return fmt.Errorf("unknown step %q", *step)
	}
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Println("ok")
}
