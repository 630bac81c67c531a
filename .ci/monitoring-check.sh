#!/usr/bin/env bash
# What an operator is shipped (issue 17): the Prometheus alerting rules and the Grafana
# dashboard.
#
#   1. promtool (Debian's `prometheus` package, installed when missing) checks
#      docker/prometheus/mpic-alerts.yaml and runs its unit tests (mpic-alerts.test.yaml: each
#      alert fires on the series it is meant for);
#   2. the dashboard is valid JSON, every panel has a query, and the chart ships the same file
#      (helm/mpic/files/mpic-dashboard.json; the chart's PrometheusRule is compared with the
#      rules file by .ci/helm-check.sh);
#   3. every metric name the rules and the dashboard query is one the services export: read
#      from real /metrics scrapes of a fleet (the files given; .ci/compose-e2e.sh scrapes its
#      coordinator and a perspective), except the two the certificate reload announces
#      (mpic_tls_certificate_not_after_seconds, mpic_tls_reload_refused_total) while they are
#      not in the scrapes yet.
#
#   .ci/monitoring-check.sh COORDINATOR.metrics PERSPECTIVE.metrics...
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$#" -ge 1 ] || {
    echo "usage: .ci/monitoring-check.sh SCRAPE... (the /metrics text of running services)" >&2
    exit 2
}
need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
python3 -c 'import yaml' 2>/dev/null || need_apt+=(python3-yaml)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "monitoring-check: installing ${need_apt[*]} (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

echo "monitoring-check: $(promtool --version 2>&1 | head -n1)"
promtool check rules docker/prometheus/mpic-alerts.yaml | sed 's/^/monitoring-check:   /'
(cd docker/prometheus && promtool test rules mpic-alerts.test.yaml) | sed 's/^/monitoring-check:   /'
cmp -s docker/grafana/mpic-dashboard.json helm/mpic/files/mpic-dashboard.json || {
    echo "monitoring-check: FAILED: helm/mpic/files/mpic-dashboard.json differs from docker/grafana/mpic-dashboard.json" >&2
    exit 1
}

python3 - "$@" <<'PY'
import json
import pathlib
import re
import sys

import yaml

ANNOUNCED = {"mpic_tls_certificate_not_after_seconds", "mpic_tls_reload_refused_total"}
NAME = re.compile(r"\bmpic_[a-z0-9_]+")

# Sample names from the OpenMetrics TYPE lines: a family with no sample yet is still exported.
exported = set()
for path in sys.argv[1:]:
    text = pathlib.Path(path).read_text()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            name, kind = parts[2], parts[3]
            suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_sum", "_count", "_created"],
                        "summary": ["_sum", "_count", "_created"]}.get(kind, [""])
            exported.update(name + s for s in suffixes)
        elif line and not line.startswith("#"):
            exported.add(re.split(r"[{ ]", line, 1)[0])
if not exported:
    sys.exit("monitoring-check: FAILED: the scrapes hold no metric")

used = {}
dashboard = json.loads(pathlib.Path("docker/grafana/mpic-dashboard.json").read_text())
panels = [p for p in dashboard["panels"] if p["type"] != "row"]
for p in panels:
    if not p.get("targets"):
        sys.exit(f"monitoring-check: FAILED: dashboard panel {p['title']!r} has no query")
    for t in p["targets"]:
        for n in NAME.findall(t["expr"]):
            used.setdefault(n, set()).add(f"dashboard: {p['title']}")
for a in dashboard.get("annotations", {}).get("list", []):
    for n in NAME.findall(a.get("expr", "")):
        used.setdefault(n, set()).add(f"dashboard annotation: {a['name']}")
for g in yaml.safe_load(pathlib.Path("docker/prometheus/mpic-alerts.yaml").read_text())["groups"]:
    for r in g["rules"]:
        for n in NAME.findall(r["expr"]):
            used.setdefault(n, set()).add(f"alert: {r['alert']}")

unknown = {n: w for n, w in used.items() if n not in exported and n not in ANNOUNCED}
announced = sorted(n for n in used if n in ANNOUNCED and n not in exported)
print(f"monitoring-check:   {len(panels)} dashboard panels; {len(used)} metric names queried, "
      f"{len(exported)} exported by the scraped services")
if announced:
    print(f"monitoring-check:   announced by the certificate reload, not exported yet: {', '.join(announced)}")
unused = sorted(n for n in exported if n.startswith("mpic_") and not n.endswith("_created")
                and re.sub(r"_(bucket|sum|count)$", "", n) not in {re.sub(r"_(bucket|sum|count)$", "", u) for u in used})
print(f"monitoring-check:   exported, on no panel or alert: {', '.join(unused) or 'none'}")
if unknown:
    for n, where in sorted(unknown.items()):
        print(f"monitoring-check: FAILED: {n} is queried ({'; '.join(sorted(where))}) but no service exports it")
    sys.exit(1)
print("monitoring-check: the rules pass promtool and their tests; every queried metric is exported")
PY
