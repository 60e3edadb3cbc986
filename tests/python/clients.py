"""Pushes to a running gateway the way Python users do, then reads the scrape back with the
reference parser from prometheus_client. Exits non-zero with a message on any mismatch.

Usage: python3 clients.py HOST:PORT
"""

import sys

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client import delete_from_gateway, push_to_gateway, pushadd_to_gateway
from prometheus_client.parser import text_string_to_metric_families

address = sys.argv[1]
base = f"http://{address}"


def check(condition, message):
    if not condition:
        print(f"FAIL: {message}", file=sys.stderr)
        sys.exit(1)


def scrape():
    response = requests.get(f"{base}/metrics", timeout=10)
    check(response.status_code == 200, f"scrape answered {response.status_code}")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(families, name):
    return [s for family in families.values() for s in family.samples if s.name == name]


# 1. requests.post with a triple-quoted body, whose last line is only indentation.
data = """
# TYPE my_metric gauge
# HELP my_metric An example metric.
my_metric{provider="hetzner"} 21.90
    """
response = requests.post(f"{base}/metrics/job/my_custom_metrics/instance/10.20.0.1:9000/team/the-best-team", data=data, timeout=10)
check(response.status_code == 200, f"requests.post answered {response.status_code}: {response.text}")
found = samples(scrape(), "my_metric")
check(len(found) == 1, f"my_metric samples: {found}")
check(found[0].value == 21.9, f"value {found[0].value}")
check(found[0].labels == {"instance": "10.20.0.1:9000", "job": "my_custom_metrics", "provider": "hetzner", "team": "the-best-team"}, f"labels {found[0].labels}")

# 2. The official client: push, pushadd and delete, with grouping values that need base64
#    (a slash, an empty value, a space).
registry = CollectorRegistry()
Gauge("job_last_success_unixtime", "Last time a batch job successfully finished", registry=registry).set_to_current_time()
Counter("records_processed", "Records processed", ["kind"], registry=registry).labels("a").inc(3)
Histogram("job_duration_seconds", "Duration", registry=registry, buckets=(0.5, 1.0)).observe(0.7)
Summary("job_size_bytes", "Size", registry=registry).observe(100)
grouping = {"path": "/var/backups", "empty": "", "who": "night shift"}
push_to_gateway(address, job="batch/backup", registry=registry, grouping_key=grouping)
families = scrape()
records = samples(families, "records_processed_total")
check(len(records) == 1, f"records_processed_total: {records}")
check(records[0].labels == {"empty": "", "instance": "", "job": "batch/backup", "kind": "a", "path": "/var/backups", "who": "night shift"}, f"labels {records[0].labels}")
check(records[0].value == 3, f"value {records[0].value}")
buckets = samples(families, "job_duration_seconds_bucket")
check(sorted(float(b.labels["le"]) for b in buckets) == [0.5, 1.0, float("inf")], f"buckets {buckets}")
check(len(samples(families, "job_size_bytes_count")) == 1, "summary count missing")

# pushadd replaces only the families it carries.
registry2 = CollectorRegistry()
Gauge("job_last_success_unixtime", "Last time a batch job successfully finished", registry=registry2).set(42)
pushadd_to_gateway(address, job="batch/backup", registry=registry2, grouping_key=grouping)
families = scrape()
check(samples(families, "job_last_success_unixtime")[0].value == 42, "pushadd did not replace the gauge")
check(len(samples(families, "records_processed_total")) == 1, "pushadd removed another family")

# A refused push raises for the client.
bad = CollectorRegistry()
Gauge("records_processed_total", "now a gauge", registry=bad).set(1)
try:
    pushadd_to_gateway(address, job="other", registry=bad)
    check(False, "a type clash was accepted")
except OSError as error:
    check("400" in str(error), f"unexpected error {error}")

delete_from_gateway(address, job="batch/backup", grouping_key=grouping)
families = scrape()
check(samples(families, "records_processed_total") == [], "delete_from_gateway left the group")

# 3. Compressed pushes: gzip, and snappy (python-snappy's framed stream format).
for compression in ("gzip", "snappy"):
    compressed = CollectorRegistry()
    Gauge("compressed_push", "Pushed compressed", registry=compressed).set(len(compression))
    push_to_gateway(address, job=f"compressed_{compression}", registry=compressed, compression=compression)
    found = samples(scrape(), "compressed_push")
    check(any(s.labels["job"] == f"compressed_{compression}" and s.value == len(compression) for s in found), f"{compression} push missing: {found}")
print("python clients: ok")
