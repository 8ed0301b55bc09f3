"""Checks of deploy/kubernetes/ that the Kubernetes schemas cannot make
(kubernetes-validate --strict does those, run by tests/kubernetes.rs):

  servicemonitor  every field of servicemonitor.yaml is in the CRD's field
                  list (servicemonitor-fields.txt), with the right type, and
                  the required ones are there; honorLabels is true
  statefulset     what the deployment promises: PVC, probes, security
  values          every key path of helm-values.yaml exists in the chart's
                  values.yaml (chart-values.yaml), or lies under a value
                  that is `{}` there (free-form, passed to Kubernetes)

Usage: python3 check.py <check> <repo root>. Prints what it checked; any
failure raises (exit status 1) with the reason.
"""
import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load(path):
    docs = load_all(path)
    assert len(docs) == 1, f"{path}: expected one document, got {len(docs)}"
    return docs[0]


def key_paths(value, prefix=()):
    """(path, value) for every key in nested maps, the path a tuple of keys
    (label names hold dots); list items add `[]` to the list's key."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = prefix + (str(k),)
            yield p, v
            yield from key_paths(v, p)
    elif isinstance(value, list):
        for item in value:
            yield from key_paths(item, prefix[:-1] + (prefix[-1] + "[]",))


def paths(value):
    """Like key_paths, each path joined with dots (and its tuple)."""
    for p, v in key_paths(value):
        yield ".".join(p), v, p


TYPES = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "int-or-string": lambda v: isinstance(v, (int, str)) and not isinstance(v, bool),
    "any": lambda v: True,
}


def check_servicemonitor(root):
    fields, required = {}, []
    with open(os.path.join(HERE, "servicemonitor-fields.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            fields[parts[0]] = parts[1]
            if len(parts) > 2 and parts[2] == "required":
                required.append(parts[0])
    # An object the CRD leaves open (no listed sub-fields, e.g. metadata,
    # which the API server checks as ObjectMeta): anything below it goes,
    # except that we hold metadata to ObjectMeta's usual keys.
    def open_object(p):
        return fields.get(p) == "object" and not any(
            f.startswith(p + ".") for f in fields
        )

    doc = load(os.path.join(root, "deploy/kubernetes/servicemonitor.yaml"))
    assert doc["apiVersion"] == "monitoring.coreos.com/v1", doc["apiVersion"]
    assert doc["kind"] == "ServiceMonitor", doc["kind"]
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}, doc["metadata"]
    checked = 0
    for p, v, t in paths(doc):
        if p in ("apiVersion", "kind"):
            continue
        parent = ".".join(t[:-1])
        if p in fields:
            kind = fields[p]
        elif parent + ".*" in fields:
            kind = fields[parent + ".*"]
        elif any(open_object(a) for a in ancestors(t)):
            continue
        else:
            raise AssertionError(f"servicemonitor.yaml: {p} is not a ServiceMonitor field")
        assert TYPES[kind](v), f"servicemonitor.yaml: {p} should be {kind}, is {v!r}"
        checked += 1
    present = {p for p, _, _ in paths(doc)}
    for r in required:
        parent = r.rsplit(".", 1)[0]
        # Required within a parent that is there (list items: any item).
        if "." not in r or parent in present:
            assert r in present, f"servicemonitor.yaml: required field {r} missing"
    endpoints = doc["spec"]["endpoints"]
    assert endpoints and all(e.get("honorLabels") is True for e in endpoints), endpoints
    print(f"servicemonitor: {checked} fields match the CRD, honorLabels: true")


def ancestors(t):
    """The dotted paths above the path tuple t."""
    return [".".join(t[:i]) for i in range(1, len(t))]


def check_statefulset(root):
    docs = {}
    for name in ("statefulset.yaml", "service.yaml"):
        for d in load_all(os.path.join(root, "deploy/kubernetes", name)):
            docs[(d["kind"], d["metadata"]["name"])] = d
    sts = docs[("StatefulSet", "pushgateway")]
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert ("Service", spec["serviceName"]) in docs, "governing Service exists"
    assert docs[("Service", spec["serviceName"])]["spec"]["clusterIP"] == "None"
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65534
    (c,) = pod["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65534
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    # The persistence file lives on the claim's mount.
    (claim,) = spec["volumeClaimTemplates"]
    (mount,) = c["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    files = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--persistence.file=")]
    assert len(files) == 1 and files[0].startswith(mount["mountPath"] + "/"), (files, mount)
    # Every Service selects the pods and targets the container's port.
    labels = spec["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in c["ports"]}
    for (kind, name), d in docs.items():
        if kind == "Service":
            assert d["spec"]["selector"].items() <= labels.items(), name
            assert all(p["targetPort"] in port_names for p in d["spec"]["ports"]), name
    # The ServiceMonitor selects exactly one Service, through a named port.
    sm = load(os.path.join(root, "deploy/kubernetes/servicemonitor.yaml"))
    want = sm["spec"]["selector"]["matchLabels"].items()
    chosen = [d for (k, _), d in docs.items() if k == "Service" and want <= d["metadata"]["labels"].items()]
    assert len(chosen) == 1, f"the ServiceMonitor selects {len(chosen)} Services"
    svc_ports = {p["name"] for p in chosen[0]["spec"]["ports"]}
    assert all(e["port"] in svc_ports for e in sm["spec"]["endpoints"])
    print("statefulset: PVC, probes, security context, Services, ServiceMonitor selection")


def check_values(root):
    chart = yaml.safe_load(open(os.path.join(HERE, "chart-values.yaml")))
    ours = load(os.path.join(root, "deploy/kubernetes/helm-values.yaml"))
    chart_paths = {p: v for p, v, _ in paths(chart)}
    checked = 0
    for p, _, t in paths(ours):
        if "[]" in p:
            continue  # inside a list value (extraArgs items)
        if p in chart_paths:
            checked += 1
            continue
        free = [a for a in ancestors(t) if chart_paths.get(a) == {}]
        assert free, f"helm-values.yaml: {p} is not a key of the chart's values.yaml"
        checked += 1
    assert ours["image"]["repository"] != chart["image"]["repository"], "our image, not quay.io's"
    print(f"values: {checked} key paths exist in the chart's values.yaml")


CHECKS = {
    "servicemonitor": check_servicemonitor,
    "statefulset": check_statefulset,
    "values": check_values,
}

if __name__ == "__main__":
    CHECKS[sys.argv[1]](sys.argv[2])
