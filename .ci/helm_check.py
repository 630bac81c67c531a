"""Renders, lints and validates the Helm chart (helm/mpic); run by .ci/helm-check.sh.

For each case (default values; the multi-region example as a lab, as the coordinator cluster,
as one region's cluster; a variant that exercises the optional branches):

1. `helm lint --strict` with Helm's own Go code (helm-python-sdk), schema included;
2. render (helm template) and validate every manifest with kubernetes-validate against
   Kubernetes KUBE_VERSION, strictly (unknown fields are errors);
3. chart rules: no Secret is rendered; every pod runs as non-root with a read-only root
   filesystem, no capability, no privilege escalation, requests and limits, probes; every
   perspective pod has exactly one Unbound sidecar and its resolver is that sidecar's port;
   the coordinator's catalogue lists every perspective with the expected URL; the services'
   containers are probed over HTTP on their `ops` port, which every rendered configuration
   listens on (ops_listen) and no Service exposes;
4. every rendered service configuration passes `mpic config check`, and every rendered Unbound
   addition passes `unbound-checkconf` on top of the production unbound/unbound.conf;
5. every pod's terminationGracePeriodSeconds covers its service's pre-stop delay and drain;
   the PrometheusRule's rules are docker/prometheus/mpic-alerts.yaml's (and pass promtool when
   it is installed); the dashboard ConfigMap holds docker/grafana/mpic-dashboard.json.

Usage: helm_check.py MPIC_BIN OUT_DIR
"""

import copy
import json
import pathlib
import re
import shutil
import subprocess
import sys
import time

import helm_python
import kubernetes_validate
import yaml

KUBE_VERSION = "1.37.0"
CHART = pathlib.Path("helm/mpic")
NAMESPACE = "mpic"
RELEASE = "mpic"

failures = []


def fail(case, message):
    failures.append(f"{case}: {message}")
    print(f"helm-check:   FAIL {message}")


def deep_merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def cases():
    example = yaml.safe_load((CHART / "examples/multi-region.yaml").read_text())
    codes = [p["code"] for p in example["perspectives"]]
    default_codes = [p["code"] for p in yaml.safe_load((CHART / "values.yaml").read_text())["perspectives"]]
    return [
        # name, values, deployed codes, coordinator?
        ("default values (all in one cluster)", {}, default_codes, True),
        ("multi-region example, lab (everything in one cluster)", example, codes, True),
        ("multi-region example, coordinator cluster", deep_merge(example, {"deployPerspectives": []}), [], True),
        (
            "multi-region example, region eu-west-1's cluster",
            deep_merge(example, {"coordinator": {"enabled": False}, "deployPerspectives": ["eu-west-1"]}),
            ["eu-west-1"],
            False,
        ),
        (
            "options: Unbound on 5353 without IPv6, API TLS, no HPA, PodMonitors, ops peers, "
            "dashboard and alerts, a longer shutdown",
            {
                "unbound": {"port": 5353, "ipv6": False,
                            "extraConfig": "forward-zone:\n    name: \"example.\"\n    forward-addr: 192.0.2.53\n"},
                "coordinator": {"apiTls": {"existingSecret": "mpic-api-tls"},
                                "autoscaling": {"enabled": False}, "replicas": 3},
                "podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prometheus"}},
                "networkPolicy": {"opsIngressFrom": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]},
                "monitoring": {"grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "MPIC"}},
                               "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}}},
                "perspectiveDefaults": {"replicas": 2, "pdb": {"enabled": True},
                                        "config": {"shutdown": {"pre_stop_delay_ms": 8000, "drain_timeout_ms": 20000}}},
            },
            default_codes,
            True,
        ),
    ]


def check_pod(case, name, spec, perspective):
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        fail(case, f"{name}: pod securityContext.runAsNonRoot is not true")
    if pod.get("automountServiceAccountToken") is not False:
        fail(case, f"{name}: the service account token is mounted")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        where = f"{name}/{c['name']}"
        if sc.get("readOnlyRootFilesystem") is not True:
            fail(case, f"{where}: root filesystem not read-only")
        if sc.get("allowPrivilegeEscalation") is not False:
            fail(case, f"{where}: privilege escalation allowed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            fail(case, f"{where}: capabilities not dropped")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")) or sc.get("runAsUser", psc.get("runAsUser", 0)) == 0:
            fail(case, f"{where}: may run as root")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            fail(case, f"{where}: requests and limits missing")
    for c in pod["containers"]:
        if not c.get("readinessProbe") or not c.get("livenessProbe"):
            fail(case, f"{name}/{c['name']}: readiness or liveness probe missing")
        if c["name"] in ("coordinator", "perspective"):
            if "ops" not in [port.get("name") for port in c.get("ports", [])]:
                fail(case, f"{name}/{c['name']}: no container port named ops")
            for kind in ("readinessProbe", "livenessProbe"):
                get = c.get(kind, {}).get("httpGet", {})
                if get.get("port") != "ops" or get.get("scheme") != "HTTP":
                    fail(case, f"{name}/{c['name']}: {kind} is not an HTTP GET on port ops")
    if perspective:
        names = [c["name"] for c in pod["containers"]]
        if sorted(names) != ["perspective", "unbound"]:
            fail(case, f"{name}: containers {names}, expected perspective + its own unbound")


def check_grace(case, deployment, config, key):
    """The pod's terminationGracePeriodSeconds leaves the service its whole shutdown: the
    pre-stop delay and the drain (default: the request deadline + 1 s), and a moment to exit."""
    shutdown = config.get("shutdown") or {}
    if key == "coordinator.yaml":
        deadline = (config.get("timeouts") or {}).get("request_ms", 15000)
    else:
        deadline = (config.get("limits") or {}).get("check_timeout_ms", 10000)
    pre = shutdown.get("pre_stop_delay_ms", 1000)
    drain = shutdown.get("drain_timeout_ms", deadline + 1000)
    pod = deployment["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds")
    name = deployment["metadata"]["name"]
    if grace is None or grace * 1000 < pre + drain + 1000:
        fail(case, f"{name}: terminationGracePeriodSeconds {grace} does not cover the pre-stop delay "
                   f"({pre} ms) and the drain ({drain} ms)")
    if pre < 1000:
        fail(case, f"{name}: shutdown.pre_stop_delay_ms {pre}: endpoints need time to stop sending")
    for c in pod["containers"]:
        if c.get("lifecycle", {}).get("preStop"):
            fail(case, f"{name}/{c['name']}: a preStop hook; the services delay their own shutdown")


def check_rules(case, ident, doc, out_dir):
    """A PrometheusRule: its groups are those of docker/prometheus/mpic-alerts.yaml (with the
    default thresholds), and promtool accepts them."""
    groups = doc.get("spec", {}).get("groups") or []
    plain = yaml.safe_load(pathlib.Path("docker/prometheus/mpic-alerts.yaml").read_text())["groups"]
    if groups != plain:
        fail(case, f"{ident}: its rules differ from docker/prometheus/mpic-alerts.yaml")
    promtool = shutil.which("promtool")
    if promtool:
        f = out_dir / f"{doc['metadata']['name']}-rules.yaml"
        f.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
        if r.returncode != 0:
            fail(case, f"{ident}: promtool check rules: {(r.stdout + r.stderr).strip()}")


def check_dashboard(case, doc):
    """The dashboard ConfigMap carries the sidecar's label and docker/grafana/mpic-dashboard.json."""
    ident = f"ConfigMap/{doc['metadata']['name']}"
    if doc["metadata"].get("labels", {}).get("grafana_dashboard") != "1":
        fail(case, f"{ident}: no grafana_dashboard: \"1\" label")
    shipped = json.loads(pathlib.Path("docker/grafana/mpic-dashboard.json").read_text())
    if json.loads(doc["data"]["mpic-dashboard.json"]) != shipped:
        fail(case, f"{ident}: not docker/grafana/mpic-dashboard.json")


def run_case(case, values, expect_codes, expect_coordinator, mpic_bin, out_dir):
    t0 = time.monotonic()
    print(f"helm-check: {case}")
    case_dir = out_dir / re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    case_dir.mkdir(parents=True)

    report = helm_python.lint(str(CHART), values or None, strict=True, namespace=NAMESPACE,
                              kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
    for m in problems:
        fail(case, f"lint: {m.get('path', '')} {m['error']}")
    infos = [m["error"] for m in report["messages"] if m["severity"] < 2]
    print(f"helm-check:   lint --strict: {len(problems)} problem(s)" + (f" (info: {'; '.join(infos)})" if infos else ""))

    chart = helm_python.Chart.load(str(CHART))
    try:
        rendered = chart.render(values or None, name=RELEASE, namespace=NAMESPACE, is_install=True)
    finally:
        chart.close()
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    (case_dir / "manifests.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))

    kinds = {}
    for doc in docs:
        kind = doc["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
        ident = f"{kind}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, True)
        except kubernetes_validate.SchemaNotFoundError:
            if doc["apiVersion"] == "monitoring.coreos.com/v1" and kind == "PrometheusRule":
                check_rules(case, ident, doc, case_dir)
            elif doc["apiVersion"] == "monitoring.coreos.com/v1" and kind == "PodMonitor":
                spec = doc.get("spec", {})
                endpoints = spec.get("podMetricsEndpoints") or []
                if not spec.get("selector", {}).get("matchLabels") or not endpoints:
                    fail(case, f"{ident}: selector or podMetricsEndpoints missing")
                for e in endpoints:
                    if e.get("port") != "ops" or e.get("path") != "/metrics" or e.get("scheme", "http") != "http":
                        fail(case, f"{ident}: endpoint {e} is not plain HTTP /metrics on port ops")
                unknown = set(spec) - {"selector", "podMetricsEndpoints", "podTargetLabels"}
                if unknown:
                    fail(case, f"{ident}: unexpected spec fields {sorted(unknown)}")
            else:
                fail(case, f"{ident}: no schema for {doc['apiVersion']}")
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(x) for x in getattr(e, "path", []) or [])
            fail(case, f"{ident}: {str(e).splitlines()[0]}" + (f" (at {where})" if where else ""))
    print(f"helm-check:   kubernetes-validate --strict (Kubernetes {KUBE_VERSION}): {len(docs)} manifests "
          f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}; PodMonitor, PrometheusRule: no "
          "bundled schema, structure checked)")

    for doc in docs:
        if doc["kind"] == "Service":
            for port in doc["spec"].get("ports", []):
                if port.get("name") == "ops" or port.get("targetPort") == "ops":
                    fail(case, f"Service/{doc['metadata']['name']} exposes the ops port")

    if "Secret" in kinds:
        fail(case, "the chart rendered a Secret (secrets must be referenced, never embedded)")

    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    perspective_deps = {n: d for n, d in deployments.items() if d["metadata"]["labels"].get("app.kubernetes.io/component") == "perspective"}
    deployed = sorted(d["metadata"]["labels"]["mpic/perspective-code"] for d in perspective_deps.values())
    if deployed != sorted(expect_codes):
        fail(case, f"perspective Deployments for {deployed}, expected {sorted(expect_codes)}")
    has_coordinator = f"{RELEASE}-coordinator" in deployments
    if has_coordinator != expect_coordinator:
        fail(case, f"coordinator Deployment present: {has_coordinator}, expected {expect_coordinator}")
    for name, d in deployments.items():
        check_pod(case, name, d["spec"], name in perspective_deps)

    configs = []
    unbound_port = int(deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)["unbound"]["port"])
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        if "mpic-dashboard.json" in doc.get("data", {}):
            check_dashboard(case, doc)
            continue
        for key, text in doc.get("data", {}).items():
            f = case_dir / f"{doc['metadata']['name']}.{key}"
            f.write_text(text)
            if key == "extra.conf":
                configs.append(("unbound", f))
            else:
                configs.append(("service", f))
                parsed = yaml.safe_load(text)
                if not parsed.get("ops_listen"):
                    fail(case, f"{f.name}: no ops_listen")
                if key == "perspective.yaml" and parsed["resolver"]["address"] != f"127.0.0.1:{unbound_port}":
                    fail(case, f"{f.name}: resolver {parsed['resolver']['address']}, Unbound listens on {unbound_port}")
                deployment = deployments.get(doc["metadata"]["name"])
                if deployment is not None:
                    check_grace(case, deployment, parsed, key)
                if key == "coordinator.yaml":
                    merged = deep_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)
                    want = {p["code"]: p.get("externalUrl") or f"https://{RELEASE}-perspective-{p['code']}.{NAMESPACE}.svc:8443"
                            for p in merged["perspectives"]}
                    got = {p["code"]: p["url"] for p in parsed["perspectives"]}
                    if got != want:
                        fail(case, f"coordinator catalogue {got}, expected {want}")

    checked = 0
    for kind, f in configs:
        if kind == "service":
            r = subprocess.run([mpic_bin, "config", "check", str(f)], capture_output=True, text=True)
            first = (r.stdout.strip().splitlines() or [""])[0]
            if r.returncode != 0 or "a valid" not in first:
                fail(case, f"mpic config check {f.name}: exit {r.returncode}: {(r.stdout + r.stderr).strip()}")
            else:
                checked += 1
        else:
            checkconf = shutil.which("unbound-checkconf") or "/usr/sbin/unbound-checkconf"
            if not pathlib.Path(checkconf).exists():
                print("helm-check:   (unbound-checkconf not installed: Unbound additions not checked)")
                continue
            anchor = case_dir / "root.key"
            shutil.copy("/usr/share/dns/root.key", anchor)
            production = pathlib.Path("unbound/unbound.conf").read_text()
            production = production.replace('"/var/lib/unbound/root.key"', f'"{anchor}"')
            conf = case_dir / "unbound-with-extra.conf"
            conf.write_text(production + f'\ninclude-toplevel: "{f}"\n')
            r = subprocess.run([checkconf, str(conf)], capture_output=True, text=True)
            if r.returncode != 0:
                fail(case, f"unbound-checkconf (production + {f.name}): {(r.stdout + r.stderr).strip()}")
            else:
                checked += 1
    print(f"helm-check:   {checked} of {len(configs)} rendered configurations pass mpic config check / unbound-checkconf")
    print(f"helm-check:   ({time.monotonic() - t0:.1f} s)")


def main():
    mpic_bin, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
    print(f"helm-check: Helm SDK {helm_python.helm_sdk_version()}, kubernetes-validate "
          f"{kubernetes_validate.version.__version__ if hasattr(kubernetes_validate.version, '__version__') else ''}".rstrip())
    for case, values, codes, coordinator in cases():
        run_case(case, values, codes, coordinator, mpic_bin, out_dir)
    if failures:
        print(f"helm-check: {len(failures)} failure(s):")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)
    print("helm-check: the chart lints, renders and validates; every rendered configuration is valid")


if __name__ == "__main__":
    main()
