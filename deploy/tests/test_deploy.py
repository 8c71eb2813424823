"""Checks of the deployment files: the Helm chart (lint, render in both
modes, every object valid for Kubernetes, values and schema, template
references), the plain manifests in deploy/kubernetes, the config examples
(`kiln config check`), docker-compose and its Grafana provisioning, the
example app against a real Kiln, and the Dockerfile against the README.

Run with deploy/tests/run.sh (after `cargo build --workspace`).
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml
from yamllint import config as yamllint_config
from yamllint import linter as yamllint_linter

sys.path.insert(0, str(Path(__file__).parent))
import chart_render  # noqa: E402

ROOT = chart_render.ROOT
CHART = chart_render.CHART
DEPLOY = ROOT / "deploy"
KILN = Path(os.environ.get("KILN_BIN", ROOT / "target" / "debug" / "kiln"))
KUBE_VERSION = chart_render.KUBE_VERSION

EXAMPLE_VALUES = sorted((CHART / "ci").glob("*.yaml"))

AUTH_CREDENTIALS = [
    {"tenant": "tenant-a", "token": "agent-token-a", "scopes": ["write"]},
    {"tenant": "tenant-a", "username": "grafana", "password": "grafana-password", "scopes": ["read"]},
    # sha256("hashed-token")
    {"tenant": "free-tier", "token_sha256": "550643f45e135491c47bea94823b37278d5dd91375b285d44001d005d1603a33"},
]

# (id, values) of every rendering the checks cover.
CASES = [
    ("single-binary-defaults", {}),
    ("microservices-defaults", {"mode": "microservices"}),
] + [(p.stem, yaml.safe_load(p.read_text())) for p in EXAMPLE_VALUES] + [
    (
        "everything-on",
        {
            "mode": "microservices",
            "storage": {"s3": {"accessKeyId": "a", "secretAccessKey": "b", "existingSecret": "s3"}},
            "multitenancy": {"enabled": True},
            "limits": {"max_series": 10000, "max_query_length": "400d"},
            "overrides": {
                "tenant-a": {"ingestion_rate_mb": 20, "max_query_length": "30d"},
                "free-tier": {"max_series": 500, "max_nodes_default": 1024, "max_nodes_max": 4096},
                "empty": {},
            },
            "runtimeConfig": {"period": "30s"},
            "auth": {"enabled": True, "credentials": AUTH_CREDENTIALS},
            "kiln": {
                "secretEnv": {"KILN_EXAMPLE__TOKEN": "t"},
                "existingSecret": "kiln-env",
                "files": {"notes.txt": "kept next to kiln.yaml\n"},
                "extraArgs": ["--log.level=debug"],
            },
            "ingress": {"enabled": True, "tls": [{"hosts": ["kiln.example.com"], "secretName": "tls"}]},
            "serviceMonitor": {"enabled": True, "scrapeTimeout": "10s"},
            "ingester": {"persistence": {"enabled": True}},
            "metastore": {"persistence": {"enabled": False}, "replicas": 1},
            "distributor": {"autoscaling": {"enabled": False}},
            "queryFrontend": {"enabled": False},
            "serviceAccount": {"create": False, "name": "kiln-sa"},
            "imagePullSecrets": [{"name": "regcred"}],
        },
    ),
    (
        "single-binary-no-persistence",
        {"singleBinary": {"persistence": {"enabled": False}}, "ingress": {"enabled": True}},
    ),
    (
        "single-binary-auth-existing-secret",
        {
            "auth": {"enabled": True, "existingSecret": "my-kiln-credentials"},
            "overrides": {"anonymous": {"max_series": 100}},
        },
    ),
]
CASE_IDS = [c[0] for c in CASES]

# What a Secret named by auth.existingSecret holds in the checks that need
# the file (kiln config check reads it).
EXISTING_SECRET_CREDENTIALS = "credentials:\n  - tenant: ops\n    token: from-an-existing-secret\n"

COMPONENT_KEYS = ["singleBinary", "distributor", "ingester", "querier", "queryFrontend", "compactor", "metastore"]


@pytest.fixture(scope="session")
def chart():
    return chart_render.load_chart()


@pytest.fixture(scope="session")
def renderings(chart):
    return {case_id: chart_render.render(values, chart) for case_id, values in CASES}


def kiln_bin():
    if not KILN.is_file():
        pytest.fail(f"{KILN} not found: run `cargo build --workspace` first (or set KILN_BIN)")
    return str(KILN)


def kiln_config_check(path, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    full_env.update(env or {})
    return subprocess.run(
        [kiln_bin(), "config", "check", str(path)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def yamllint_problems(text, path):
    conf = yamllint_config.YamlLintConfig(file=str(DEPLOY / "tests" / "yamllint.yaml"))
    return [f"{path}:{p.line}:{p.column}: {p.desc} ({p.rule})" for p in yamllint_linter.run(text, conf)]


def validate_kubernetes_object(doc, where):
    """Validates one object against the bundled Kubernetes schemas (strict:
    unknown fields fail). ServiceMonitor is a CRD without a bundled schema:
    its shape is checked by hand."""
    if doc.get("kind") == "ServiceMonitor":
        assert doc["apiVersion"] == "monitoring.coreos.com/v1", where
        endpoints = doc["spec"]["endpoints"]
        assert endpoints and all(e["port"] and e["path"] == "/metrics" for e in endpoints), where
        assert doc["spec"]["selector"]["matchLabels"], where
        return
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")


# --- the chart ----------------------------------------------------------------


@pytest.mark.parametrize("case_id,values", CASES, ids=CASE_IDS)
def test_helm_lint_is_clean(case_id, values):
    report = helm.lint(str(CHART), values, strict=True, kube_version="v" + KUBE_VERSION)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert not problems, problems


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_rendered_object_is_valid_kubernetes(case_id, renderings):
    docs = chart_render.documents(renderings[case_id])
    assert docs
    for template, doc in docs:
        validate_kubernetes_object(doc, f"{case_id}: {template}")
    names = [(d["kind"], d["metadata"]["name"]) for _, d in docs]
    assert len(names) == len(set(names)), f"duplicate objects: {names}"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_rendered_objects_refer_to_each_other_correctly(case_id, renderings):
    docs = [d for _, d in chart_render.documents(renderings[case_id])]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    assert workloads
    pod_labels = {}
    for name, w in workloads.items():
        labels = w["spec"]["template"]["metadata"]["labels"]
        selector = w["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), f"{name}: selector does not match its pods"
        pod_labels[name] = labels
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod["volumes"]}
        claims = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
        for container in pod["containers"]:
            for mount in container["volumeMounts"]:
                assert mount["name"] in volumes | claims, f"{name}: volume {mount['name']} missing"
            config = [a for a in container["args"] if a.startswith("--config=")]
            assert config == ["--config=/etc/kiln/kiln.yaml"], name
        config_maps = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert config_maps <= set(by_kind["ConfigMap"]), name
        for source in pod["containers"][0].get("envFrom", []):
            secret = source["secretRef"]["name"]
            assert secret in by_kind.get("Secret", {}) or secret in ("s3", "kiln-env", "kiln-s3"), secret
        for volume in pod["volumes"]:
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                assert secret in by_kind.get("Secret", {}) or secret == "my-kiln-credentials", secret
        if w["kind"] == "StatefulSet":
            headless = by_kind["Service"][w["spec"]["serviceName"]]
            assert headless["spec"]["clusterIP"] == "None", name
        account = pod["serviceAccountName"]
        assert account in by_kind.get("ServiceAccount", {}) or account == "kiln-sa", name
    for name, svc in by_kind.get("Service", {}).items():
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels.values()), (
            f"service {name} selects no pods"
        )
    for kind in ("PodDisruptionBudget",):
        for name, pdb in by_kind.get(kind, {}).items():
            selector = pdb["spec"]["selector"]["matchLabels"]
            assert any(selector.items() <= labels.items() for labels in pod_labels.values()), name
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["name"] in by_kind["Deployment"], name
        assert "replicas" not in by_kind["Deployment"][target["name"]]["spec"], (
            f"{target['name']} sets replicas although an HPA scales it"
        )
        assert hpa["spec"]["metrics"], name
    services = by_kind.get("Service", {})
    for name, ingress in by_kind.get("Ingress", {}).items():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in services, name


def test_single_binary_mode_runs_every_role_in_one_statefulset(renderings):
    docs = [d for _, d in chart_render.documents(renderings["single-binary-defaults"])]
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert [(w["kind"], w["metadata"]["name"]) for w in workloads] == [("StatefulSet", "kiln")]
    assert "--target=all" in workloads[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert workloads[0]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_microservices_mode_runs_each_role_separately(renderings):
    docs = [d for _, d in chart_render.documents(renderings["microservices-defaults"])]
    workloads = {
        d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    }
    kinds = {name: w["kind"] for name, w in workloads.items()}
    assert kinds == {
        "kiln-distributor": "Deployment",
        "kiln-querier": "Deployment",
        "kiln-query-frontend": "Deployment",
        "kiln-compactor": "Deployment",
        "kiln-ingester": "StatefulSet",
        "kiln-metastore": "StatefulSet",
    }
    for name, w in workloads.items():
        args = w["spec"]["template"]["spec"]["containers"][0]["args"]
        assert f"--target={name.removeprefix('kiln-')}" in args, name
    metastore = workloads["kiln-metastore"]
    assert metastore["spec"]["replicas"] == 3
    assert metastore["spec"]["podManagementPolicy"] == "Parallel"
    assert metastore["spec"]["volumeClaimTemplates"]
    hpas = {d["metadata"]["name"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert hpas == {"kiln-distributor", "kiln-querier", "kiln-query-frontend"}
    pdbs = {d["metadata"]["name"] for d in docs if d["kind"] == "PodDisruptionBudget"}
    assert pdbs == {
        "kiln-distributor", "kiln-querier", "kiln-query-frontend", "kiln-ingester", "kiln-metastore",
    }
    headless = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"
    }
    assert headless == {"kiln-ingester-headless", "kiln-metastore-headless"}


def rendered_kiln_yaml(rendered):
    maps = [d for _, d in chart_render.documents(rendered) if d["kind"] == "ConfigMap"]
    assert len(maps) == 1
    return maps[0]["data"]["kiln.yaml"]


def materialize(rendered, root):
    """Lays out the files a pod of `rendered` sees under `root` (the
    ConfigMap and Secret volumes at their mount paths; a Secret the chart
    does not create holds EXISTING_SECRET_CREDENTIALS) and writes its
    kiln.yaml with those paths moved under `root`. Returns (path of that
    kiln.yaml, its parsed content)."""
    docs = [d for _, d in chart_render.documents(rendered)]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    mapping = {}
    for workload in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in pod["containers"][0]["volumeMounts"]:
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                files = dict(config_map["data"])
            elif "secret" in volume:
                name = volume["secret"]["secretName"]
                data = secrets[name]["stringData"] if name in secrets else {
                    "credentials.yaml": EXISTING_SECRET_CREDENTIALS
                }
                files = {i["path"]: data[i["key"]] for i in volume["secret"]["items"]}
            else:
                continue
            local = root / mount["mountPath"].strip("/")
            if mount["mountPath"] in mapping:
                continue
            local.mkdir(parents=True)
            for name, text in files.items():
                (local / name).write_text(text)
            mapping[mount["mountPath"]] = local
    text = (mapping["/etc/kiln"] / "kiln.yaml").read_text()
    for pod_path, local in mapping.items():
        text = text.replace(pod_path + "/", f"{local}/")
    path = root / "kiln.yaml"
    path.write_text(text)
    return path, yaml.safe_load(text)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_chart_kiln_yaml_passes_kiln_config_check(case_id, renderings, tmp_path):
    """kiln config check on the rendered kiln.yaml, with the overrides and
    credentials files where the pods see them (so both are checked too)."""
    text = rendered_kiln_yaml(renderings[case_id])
    path, config = materialize(renderings[case_id], tmp_path)
    # The files kiln.yaml names are mounted in the pods.
    assert Path(config["runtime_config"]["file"]).is_file(), text
    if config.get("auth", {}).get("enabled"):
        assert Path(config["auth"]["credentials_file"]).is_file(), text
    node_ids = ["1"]
    if "metastore" in config and config["metastore"].get("peers"):
        node_ids = [p.split("@")[0] for p in config["metastore"]["peers"].split(",")]
    for node_id in node_ids:
        # What a metastore pod sees (its node id comes from the environment),
        # and with node id 1 what every other role sees.
        result = kiln_config_check(path, {"KILN_METASTORE__NODE_ID": node_id})
        assert result.returncode == 0, f"node {node_id}: {result.stderr}\n{text}"


def test_kiln_config_values_are_merged_into_kiln_yaml(chart):
    values = yaml.safe_load((CHART / "ci" / "single-binary-s3.yaml").read_text())
    config = yaml.safe_load(rendered_kiln_yaml(chart_render.render(values, chart)))
    assert config["ingester"]["flush_interval"] == "2s"
    assert config["compactor"]["retention"]["raw"] == "14days"
    assert config["multitenancy"]["enabled"] is True
    assert config["limits"]["max_profile_bytes"] == 8388608
    assert config["storage"]["backend"] == "s3"
    assert config["storage"]["s3"]["bucket"] == "my-kiln-profiles"
    assert config["log"]["format"] == "json"
    # kiln.config wins over what the chart derives.
    config = yaml.safe_load(
        rendered_kiln_yaml(
            chart_render.render({"kiln": {"config": {"storage": {"s3": {"region": "x"}}}}}, chart)
        )
    )
    assert config["storage"]["s3"]["region"] == "x"
    assert config["storage"]["s3"]["bucket"] == "kiln"


def test_secret_holds_credentials_and_secret_env(renderings):
    docs = [d for _, d in chart_render.documents(renderings["everything-on"])]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "kiln")
    assert secret["stringData"] == {
        "KILN_STORAGE__S3__ACCESS_KEY_ID": "a",
        "KILN_STORAGE__S3__SECRET_ACCESS_KEY": "b",
        "KILN_EXAMPLE__TOKEN": "t",
    }
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            env_from = d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
            # The auth Secret is mounted as a file, not loaded as variables.
            assert [e["secretRef"]["name"] for e in env_from] == ["kiln", "kiln-env", "s3"]
    assert not any(
        d["kind"] == "Secret" for _, d in chart_render.documents(renderings["single-binary-defaults"])
    )


def test_extra_files_sit_next_to_kiln_yaml(renderings):
    docs = [d for _, d in chart_render.documents(renderings["everything-on"])]
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    assert sorted(config_map["data"]) == ["kiln.yaml", "notes.txt", "overrides.yaml"]
    assert config_map["data"]["notes.txt"] == "kept next to kiln.yaml\n"


def pod_templates(rendered):
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for _, d in chart_render.documents(rendered)
        if d["kind"] in ("Deployment", "StatefulSet")
    }


def config_map_of(rendered):
    return next(d for _, d in chart_render.documents(rendered) if d["kind"] == "ConfigMap")


@pytest.mark.parametrize("mode", ["single-binary", "microservices"])
def test_overrides_go_to_a_reloaded_file_and_restart_no_pod(mode, chart):
    """`overrides` is rendered into overrides.yaml in the ConfigMap, which
    kiln.yaml names as runtime_config.file (also with no overrides, so that
    the first override needs no restart either). Changing overrides changes
    only that file: the pod templates stay byte-identical, so no pod
    restarts (Kiln re-reads the file). Changing `limits` changes kiln.yaml
    and its checksum, which restarts the pods."""
    base = {"mode": mode, "multitenancy": {"enabled": True}}
    none = chart_render.render(base, chart)
    some = chart_render.render({**base, "overrides": {
        "team-a": {"ingestion_rate_mb": 20, "max_query_length": "90d"},
        "free-tier": {"max_series": 500},
    }}, chart)
    other = chart_render.render({**base, "overrides": {"team-a": {"max_series": 7}}}, chart)

    config = yaml.safe_load(config_map_of(none)["data"]["kiln.yaml"])
    assert config["runtime_config"] == {"file": "/etc/kiln/overrides.yaml", "period": "10s"}
    assert yaml.safe_load(config_map_of(none)["data"]["overrides.yaml"]) == {"overrides": {}}
    assert yaml.safe_load(config_map_of(some)["data"]["overrides.yaml"]) == {"overrides": {
        "team-a": {"ingestion_rate_mb": 20, "max_query_length": "90d"},
        "free-tier": {"max_series": 500},
    }}
    for rendered in (none, some, other):
        for name, template in pod_templates(rendered).items():
            mounts = {m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in template["spec"]["volumes"]}
            # The whole ConfigMap is mounted (a subPath mount would never be
            # refreshed by the kubelet).
            assert volumes[mounts["/etc/kiln"]]["configMap"]["name"] == config_map_of(rendered)["metadata"]["name"]
            assert not any("subPath" in m for m in template["spec"]["containers"][0]["volumeMounts"]), name
    assert config_map_of(none)["data"]["kiln.yaml"] == config_map_of(some)["data"]["kiln.yaml"]
    assert pod_templates(none) == pod_templates(some) == pod_templates(other)
    assert config_map_of(some)["data"]["overrides.yaml"] != config_map_of(other)["data"]["overrides.yaml"]

    limited = chart_render.render({**base, "limits": {"max_series": 10}}, chart)
    assert yaml.safe_load(config_map_of(limited)["data"]["kiln.yaml"])["limits"] == {"max_series": 10}
    for name, template in pod_templates(limited).items():
        before = pod_templates(none)[name]["metadata"]["annotations"]["checksum/config"]
        assert template["metadata"]["annotations"]["checksum/config"] != before, name


def test_auth_credentials_are_a_mounted_secret_file(chart):
    """auth.credentials become credentials.yaml in the chart's Secret,
    mounted in every pod where kiln.yaml's auth.credentials_file points;
    no token reaches the ConfigMap or the environment. New credentials
    change the pods' checksum/auth (Kiln reads them at start). With
    existingSecret the user's Secret is mounted instead."""
    values = {"mode": "microservices", "multitenancy": {"enabled": True},
              "auth": {"enabled": True, "credentials": AUTH_CREDENTIALS}}
    rendered = chart_render.render(values, chart)
    docs = [d for _, d in chart_render.documents(rendered)]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert list(secrets) == ["kiln-auth"]
    assert yaml.safe_load(secrets["kiln-auth"]["stringData"]["credentials.yaml"]) == {
        "credentials": AUTH_CREDENTIALS
    }
    config = yaml.safe_load(config_map_of(rendered)["data"]["kiln.yaml"])
    assert config["auth"] == {"enabled": True, "credentials_file": "/etc/kiln-auth/credentials.yaml"}
    assert config["multitenancy"] == {"enabled": True}
    everything_but_the_secret = yaml.safe_dump([d for d in docs if d["kind"] != "Secret"])
    for secret in ("agent-token-a", "grafana-password"):
        assert secret not in everything_but_the_secret
    templates = pod_templates(rendered)
    assert len(templates) == 6
    for name, template in templates.items():
        container = template["spec"]["containers"][0]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["auth"]["mountPath"] == "/etc/kiln-auth" and mounts["auth"]["readOnly"], name
        volume = next(v for v in template["spec"]["volumes"] if v["name"] == "auth")
        assert volume["secret"] == {
            "secretName": "kiln-auth", "items": [{"key": "credentials.yaml", "path": "credentials.yaml"}],
        }, name
        assert "envFrom" not in container, name

    rotated = [dict(AUTH_CREDENTIALS[0], token="agent-token-a2")] + AUTH_CREDENTIALS[1:]
    after = pod_templates(chart_render.render(
        {**values, "auth": {"enabled": True, "credentials": rotated}}, chart))
    for name, template in templates.items():
        annotations, new = template["metadata"]["annotations"], after[name]["metadata"]["annotations"]
        assert new["checksum/config"] == annotations["checksum/config"], name
        assert new["checksum/auth"] != annotations["checksum/auth"], name

    existing = chart_render.render({"auth": {"enabled": True, "existingSecret": "my-kiln-credentials"}}, chart)
    docs = [d for _, d in chart_render.documents(existing)]
    assert not any(d["kind"] == "Secret" for d in docs)
    (template,) = pod_templates(existing).values()
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == "auth")
    assert volume["secret"]["secretName"] == "my-kiln-credentials"
    assert "checksum/auth" not in template["metadata"]["annotations"]
    assert yaml.safe_load(config_map_of(existing)["data"]["kiln.yaml"])["auth"]["credentials_file"] == (
        "/etc/kiln-auth/credentials.yaml"
    )

    # Auth off (the default): no auth volume, kiln.yaml leaves auth alone.
    (template,) = pod_templates(chart_render.render({}, chart)).values()
    assert "auth" not in {v["name"] for v in template["spec"]["volumes"]}
    assert "auth" not in yaml.safe_load(config_map_of(chart_render.render({}, chart))["data"]["kiln.yaml"])


@pytest.mark.parametrize(
    "values,message",
    [
        ({"auth": {"enabled": True}}, "auth.enabled needs credentials"),
        ({"auth": {"enabled": True, "existingSecret": "x", "credentials": [{"token": "t"}]}}, "not both"),
        (
            {"multitenancy": {"enabled": True}, "auth": {"enabled": True, "credentials": [{"token": "t"}]}},
            "auth.credentials[0]: multitenancy is enabled",
        ),
    ],
)
def test_chart_refuses_auth_values_kiln_would_refuse(values, message, chart):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        chart_render.render(values, chart)


CLUSTER_SECRET = "chart-cluster-secret-0123456789"


@pytest.mark.parametrize("mode", ["single-binary", "microservices"])
def test_cluster_secret_reaches_every_pod(mode, chart):
    """clusterSecret.value goes into the chart's Secret as
    KILN_CLUSTER__SECRET, loaded by every pod, whose template changes with
    the value (Kiln reads it at start); existingSecret becomes a
    secretKeyRef in every kiln container."""
    def render(cluster_secret):
        return chart_render.render({"mode": mode, "clusterSecret": cluster_secret}, chart)

    rendered = render({"value": CLUSTER_SECRET})
    docs = [d for _, d in chart_render.documents(rendered)]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == "kiln")
    assert secret["stringData"]["KILN_CLUSTER__SECRET"] == CLUSTER_SECRET
    templates = pod_templates(rendered)
    assert templates
    for name, template in templates.items():
        container = template["spec"]["containers"][0]
        assert {"secretRef": {"name": "kiln"}} in container["envFrom"], name
        assert CLUSTER_SECRET not in yaml.safe_dump(template), name
    rotated = pod_templates(render({"value": CLUSTER_SECRET + "-rotated"}))
    for name, template in templates.items():
        before = template["metadata"]["annotations"]["checksum/cluster-secret"]
        assert rotated[name]["metadata"]["annotations"]["checksum/cluster-secret"] != before, name

    # Rotation: a second accepted secret is in the Secret too and restarts
    # the pods.
    rotating = render({"value": CLUSTER_SECRET, "accepted": CLUSTER_SECRET + "-next"})
    secret = next(d for _, d in chart_render.documents(rotating)
                  if d["kind"] == "Secret" and d["metadata"]["name"] == "kiln")
    assert secret["stringData"]["KILN_CLUSTER__ACCEPTED_SECRET"] == CLUSTER_SECRET + "-next"
    for name, template in pod_templates(rotating).items():
        annotation = template["metadata"]["annotations"]["checksum/cluster-secret"]
        assert annotation != templates[name]["metadata"]["annotations"]["checksum/cluster-secret"], name

    managed = pod_templates(render({"existingSecret": "my-kiln-cluster", "key": "s", "acceptedKey": "next"}))
    for name, template in managed.items():
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        assert env["KILN_CLUSTER__SECRET"]["valueFrom"] == {
            "secretKeyRef": {"name": "my-kiln-cluster", "key": "s"}
        }, name
        assert env["KILN_CLUSTER__ACCEPTED_SECRET"]["valueFrom"] == {
            "secretKeyRef": {"name": "my-kiln-cluster", "key": "next", "optional": True}
        }, name
        assert "checksum/cluster-secret" not in template["metadata"]["annotations"], name

    # No secret (the default): nothing about it anywhere.
    for name, template in pod_templates(render({})).items():
        assert "KILN_CLUSTER__SECRET" not in yaml.safe_dump(template), name


@pytest.mark.parametrize(
    "values,message",
    [
        ({"value": "too-short"}, "clusterSecret"),
        ({"value": "has spaces in the middle of it"}, "clusterSecret"),
        ({"value": CLUSTER_SECRET, "existingSecret": "x"}, "not both"),
        ({"accepted": CLUSTER_SECRET}, "clusterSecret.accepted needs clusterSecret.value"),
        ({"acceptedKey": "next"}, "acceptedKey needs clusterSecret.existingSecret"),
    ],
)
def test_chart_refuses_cluster_secrets_kiln_would_refuse(values, message, chart):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        chart_render.render({"clusterSecret": values}, chart)


def test_kiln_config_check_reports_a_bad_rendered_override(chart, tmp_path):
    """An override the schema lets through but Kiln refuses (the default
    node budget above the tenant's maximum) fails kiln config check on the
    rendered files, naming the tenant and the key."""
    rendered = chart_render.render({"overrides": {"small": {"max_nodes_default": 100, "max_nodes_max": 10}}}, chart)
    path, _ = materialize(rendered, tmp_path)
    result = kiln_config_check(path)
    assert result.returncode != 0
    assert '"small"' in result.stderr and "max_nodes_default" in result.stderr, result.stderr


def test_microservices_with_filesystem_storage_is_refused(chart):
    with pytest.raises(helm.HelmError, match="storage.backend"):
        chart_render.render({"mode": "microservices", "storage": {"backend": "filesystem"}}, chart)


def test_metastore_node_id_comes_from_the_pod_ordinal(renderings, tmp_path):
    docs = [d for _, d in chart_render.documents(renderings["microservices-defaults"])]
    metastore = next(d for d in docs if d["metadata"]["name"] == "kiln-metastore" and d["kind"] == "StatefulSet")
    container = metastore["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    # Kubernetes turns $$ into $ before the shell sees it.
    command = [c.replace("$$", "$") for c in command]
    fake_kiln = tmp_path / "kiln"
    fake_kiln.write_text('#!/bin/sh\necho "node=$KILN_METASTORE__NODE_ID args=$*"\n')
    fake_kiln.chmod(0o755)
    script = command[2].replace("/usr/local/bin/kiln", str(fake_kiln))
    for ordinal in range(3):
        out = subprocess.run(
            ["/bin/sh", "-c", script, "kiln", "--target=metastore"],
            env={"POD_NAME": f"kiln-metastore-{ordinal}", "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out == f"node={ordinal + 1} args=--target=metastore\n"
    peers = yaml.safe_load(rendered_kiln_yaml(renderings["microservices-defaults"]))["metastore"]["peers"]
    assert peers.split(",")[0].startswith("1@kiln-metastore-0.kiln-metastore-headless.kiln.svc")
    advertise = {e["name"]: e.get("value") for e in container["env"]}["KILN_ADVERTISE_ADDR"]
    assert advertise == "$(POD_NAME).kiln-metastore-headless.kiln.svc.cluster.local:9095"
    assert peers.split(",")[2].split("@")[1] == advertise.replace("$(POD_NAME)", "kiln-metastore-2")


def test_notes_say_how_to_push_and_query_with_auth():
    notes = chart_render.notes({"mode": "microservices", "multitenancy": {"enabled": True},
                                "auth": {"enabled": True, "credentials": AUTH_CREDENTIALS},
                                "overrides": {"tenant-a": {"max_series": 1}}})
    push = ('curl -H "Authorization: Bearer $KILN_TOKEN" -X POST --data-binary \'main;work 10\' '
            "'http://localhost:4040/ingest?name=hello.cpu{}&from=now&until=now'")
    assert push in notes
    assert ('curl -H "Authorization: Bearer $KILN_TOKEN" '
            "'http://localhost:4041/pyroscope/render?query=hello.cpu{}&from=now-1h&until=now'") in notes
    assert "kubectl -n kiln get secret kiln-auth" in notes
    assert "credential decides the tenant" in notes
    assert "overrides for tenant-a" in notes
    # None of the secrets.
    assert "agent-token-a" not in notes and "grafana-password" not in notes
    existing = chart_render.notes({"auth": {"enabled": True, "existingSecret": "mine"}})
    assert "get secret mine" in existing
    assert "Authorization" not in chart_render.notes({})


def test_notes_say_where_to_push_and_query():
    single = chart_render.notes({})
    assert "http://kiln.kiln.svc.cluster.local:4040" in single
    micro = chart_render.notes({"mode": "microservices"})
    assert "http://kiln-distributor.kiln.svc.cluster.local:4040" in micro
    assert "http://kiln-query-frontend.kiln.svc.cluster.local:4040" in micro
    without_frontend = chart_render.notes({"mode": "microservices", "queryFrontend": {"enabled": False}})
    assert "http://kiln-querier.kiln.svc.cluster.local:4040" in without_frontend


# --- values and schema ------------------------------------------------------------


def schema():
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize(
    "path", [CHART / "values.yaml"] + EXAMPLE_VALUES, ids=lambda p: p.name
)
def test_values_validate_against_the_schema(path, chart):
    values = yaml.safe_load(path.read_text())
    jsonschema.Draft7Validator.check_schema(schema())
    if path.name != "values.yaml":
        values = chart.merge_values(values)
    jsonschema.Draft7Validator(schema()).validate(values)
    chart.validate_schema(values)


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "both"},
        {"distributor": {"replicaz": 2}},
        {"metastore": {"replicas": 2}},
        {"storage": {"backend": "gcs"}},
        {"kiln": {"log": {"format": "xml"}}},
        {"ports": {"http": "4040"}},
        {"kiln": {"files": {"kiln.yaml": "x"}}},
        {"kiln": {"files": {"overrides.yaml": "x"}}},
        {"limits": {"max_seriess": 1}},
        {"limits": {"max_series": "many"}},
        {"overrides": {"team-a": {"ingestion_rate": 1}}},
        {"overrides": {"team a": {}}},
        {"overrides": {"..": {}}},
        {"runtimeConfig": {"period": 10}},
        {"auth": {"enabled": "yes"}},
        {"auth": {"credentials": [{"tenant": "a"}]}},
        {"auth": {"credentials": [{"tenant": "a", "token": "t", "password": "p"}]}},
        {"auth": {"credentials": [{"tenant": "a", "username": "u"}]}},
        {"auth": {"credentials": [{"tenant": "a", "token_sha256": "abc"}]}},
        {"auth": {"credentials": [{"tenant": "a", "token": "t", "scopes": ["admin"]}]}},
        {"auth": {"credentials": [{"tenant": "a", "token": "t", "scopes": []}]}},
        {"auth": {"existingSecrets": "x"}},
    ],
)
def test_schema_rejects_bad_values(bad, chart):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema()).validate(chart.merge_values(bad))
    with pytest.raises(helm.HelmError):
        chart.render(bad, name="kiln", namespace="kiln")


def value_paths(values, prefix=()):
    """Every key path of a values tree (maps only)."""
    paths = set()
    for key, value in values.items():
        path = prefix + (key,)
        paths.add(path)
        if isinstance(value, dict):
            paths |= value_paths(value, path)
    return paths


def template_files():
    return sorted(p for p in (CHART / "templates").rglob("*") if p.is_file())


def test_templates_reference_only_values_that_exist():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    known = value_paths(values)
    missing = []
    # `.Values.a.b`, `$.Values.a.b` and `.ctx.Values.a.b`.
    for path in template_files():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for ref in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", line):
                key = tuple(ref.lstrip(".").split("."))
                if key not in known:
                    missing.append(f"{path.relative_to(ROOT)}:{n}: .Values{ref}")
    # Helpers take a component's values as `.values`; they are called with
    # .Values.<component>, so every `.values.x` must exist in each component
    # the helper is called with.
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    bodies = dict(re.findall(r'\{\{-? define "([^"]+)" -?\}\}(.*?)\{\{-? end \}\}\s*(?=\{\{/\*|\{\{-? define|\Z)', helpers, re.S))
    assert "kiln.podSpec" in bodies and "kiln.deployment" in bodies, sorted(bodies)

    def uses(name, seen=()):
        body = bodies.get(name, "")
        refs = set(re.findall(r"\.values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", body))
        for inner in re.findall(r'include "([^"]+)"', body):
            if inner not in seen:
                refs |= uses(inner, seen + (name,))
        return refs

    calls = 0
    for path in template_files():
        text = path.read_text()
        for helper, component in re.findall(
            r'include "([^"]+)" \(dict [^)]*"values" \.Values\.([A-Za-z]+)', text
        ) + [
            (h, c)
            for c in re.findall(r'\$ctx := dict [^\n]*"values" \.Values\.([A-Za-z]+)', text)
            for h in re.findall(r'include "([^"]+)"[^\n]*\$ctx', text)
        ]:
            calls += 1
            assert component in COMPONENT_KEYS, (path, component)
            for ref in uses(helper):
                key = (component,) + tuple(ref.lstrip(".").split("."))
                if key not in known:
                    missing.append(f"{path.relative_to(ROOT)}: {helper} uses .values{ref} of {component}")
    assert calls >= 10, "the parser found too few helper calls; did the templates change shape?"
    assert not missing, "\n".join(missing)


def test_the_reference_parser_catches_a_missing_value(tmp_path):
    line = '{{ .Values.ingester.persistance.size }}'
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    ref = re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", line)[0]
    assert tuple(ref.lstrip(".").split(".")) not in value_paths(values)


# --- deploy/kubernetes --------------------------------------------------------------


@pytest.mark.parametrize("mode", list(chart_render.PLAIN_MODES))
def test_plain_manifests_equal_the_chart_rendering(mode):
    directory = chart_render.KUBERNETES / mode
    wanted = chart_render.plain_files(mode)
    present = {p.name: p.read_text() for p in directory.glob("*.yaml")}
    assert sorted(present) == sorted(wanted), (
        "deploy/kubernetes is out of date: run deploy/kubernetes/generate.sh"
    )
    for name, text in wanted.items():
        assert present[name] == text, (
            f"deploy/kubernetes/{mode}/{name} differs from the chart: run deploy/kubernetes/generate.sh"
        )


@pytest.mark.parametrize("mode", list(chart_render.PLAIN_MODES))
def test_plain_manifests_validate_and_lint_clean(mode):
    files = sorted((chart_render.KUBERNETES / mode).glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text()
        problems = yamllint_problems(text, path.relative_to(ROOT))
        assert not problems, "\n".join(problems)
        for doc in yaml.safe_load_all(text):
            if doc:
                validate_kubernetes_object(doc, str(path.relative_to(ROOT)))
        assert subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, "--quiet", str(path)],
            capture_output=True,
        ).returncode == 0, path


def test_chart_files_lint_clean():
    paths = [CHART / "Chart.yaml", CHART / "values.yaml"] + EXAMPLE_VALUES
    for path in paths:
        problems = yamllint_problems(path.read_text(), path.relative_to(ROOT))
        assert not problems, "\n".join(problems)


# --- config examples ---------------------------------------------------------------

CONFIG_EXAMPLES = sorted((DEPLOY / "config").glob("*.yaml"))


def test_config_examples_cover_single_and_microservices():
    names = {p.name for p in CONFIG_EXAMPLES}
    assert "single.yaml" in names
    roles = {"metastore", "distributor", "ingester", "querier", "query-frontend", "compactor"}
    assert {f"microservices-{r}.yaml" for r in roles} <= names


@pytest.mark.parametrize("path", CONFIG_EXAMPLES, ids=lambda p: p.name)
def test_config_example_passes_kiln_config_check(path):
    result = kiln_config_check(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: ok"
    problems = yamllint_problems(path.read_text(), path.relative_to(ROOT))
    assert not problems, "\n".join(problems)


OVERRIDES_EXAMPLES = DEPLOY / "config" / "runtime"


def test_config_examples_overrides_file_passes_kiln_config_check(tmp_path):
    """The examples' runtime_config.file is deploy/config/runtime/<name> once
    installed: with the path pointed there, kiln config check reads and
    checks the overrides against the example's limits (a broken copy
    fails, naming the tenant and key)."""
    using = [p for p in CONFIG_EXAMPLES if (yaml.safe_load(p.read_text()).get("runtime_config") or {}).get("file")]
    assert {p.name for p in using} == {
        "microservices-distributor.yaml", "microservices-querier.yaml", "microservices-query-frontend.yaml",
    }
    for path in using:
        text = path.read_text()
        installed = yaml.safe_load(text)["runtime_config"]["file"]
        example = OVERRIDES_EXAMPLES / Path(installed).name
        assert example.is_file(), f"{path.name}: no example of {installed} in {OVERRIDES_EXAMPLES}"
        problems = yamllint_problems(example.read_text(), example.relative_to(ROOT))
        assert not problems, "\n".join(problems)
        assert yaml.safe_load(example.read_text())["overrides"]
        config = tmp_path / path.name
        config.write_text(text.replace(installed, str(example)))
        result = kiln_config_check(config)
        assert result.returncode == 0, result.stderr
        broken = tmp_path / "broken-overrides.yaml"
        broken.write_text(example.read_text().replace("max_series:", "max_seriess:"))
        config.write_text(text.replace(installed, str(broken)))
        result = kiln_config_check(config)
        assert result.returncode != 0
        assert '"free-tier"' in result.stderr and "max_seriess" in result.stderr, result.stderr


def test_config_examples_serving_the_apis_agree_on_tenants_limits_and_auth():
    """Distributors, queriers and query-frontends must share credentials,
    tenancy and limits, or a token accepted at one is refused at another."""
    sections = ["multitenancy", "limits", "runtime_config", "auth"]
    configs = {
        role: yaml.safe_load((DEPLOY / "config" / f"microservices-{role}.yaml").read_text())
        for role in ("distributor", "querier", "query-frontend")
    }
    first = configs["distributor"]
    assert first["auth"]["enabled"] and first["multitenancy"]["enabled"]
    for role, config in configs.items():
        assert {s: config.get(s) for s in sections} == {s: first.get(s) for s in sections}, role


@pytest.mark.parametrize(
    "text,message",
    [
        ("ingester:\n  flush_intervall: 1s\n", "flush_intervall"),
        ("no_such_section: {}\n", "no_such_section"),
        ("target: [unclosed\n", "YAML"),
        ("distributor:\n  shards: many\n", "shards"),
        ("storage:\n  backend: s3\n", "storage.s3.bucket"),
        ("metastore:\n  node_id: 4\n  peers: 1@a:1,2@b:1\n", "metastore.node_id"),
        ("http_addr: nowhere\n", "http_addr"),
        ("limits:\n  max_seriess: 1\n", "max_seriess"),
        ("auth:\n  enabled: true\n", "no credentials"),
        ("multitenancy:\n  enabled: true\nauth:\n  enabled: true\n  credentials:\n    - token: t\n", "tenant"),
        ("auth:\n  enabled: true\n  credentials_file: /nonexistent/credentials.yaml\n", "credentials_file"),
    ],
)
def test_kiln_config_check_refuses_bad_files_clearly(text, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = kiln_config_check(path)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert str(path) in result.stderr


def test_kiln_config_check_refuses_a_missing_file(tmp_path):
    result = kiln_config_check(tmp_path / "absent.yaml")
    assert result.returncode != 0
    assert "does not exist" in result.stderr


# --- docker-compose -----------------------------------------------------------------


def compose():
    return yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())


def test_compose_files_lint_clean():
    paths = [DEPLOY / "docker-compose.yaml"] + sorted((DEPLOY / "compose").rglob("*.yaml"))
    for path in paths:
        problems = yamllint_problems(path.read_text(), path.relative_to(ROOT))
        assert not problems, "\n".join(problems)


def test_compose_runs_kiln_on_s3_with_grafana_and_an_agent():
    services = compose()["services"]
    assert {"minio", "create-bucket", "kiln", "grafana", "example-app"} <= set(services)
    kiln = services["kiln"]
    assert kiln["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / kiln["build"]["context"] / kiln["build"]["dockerfile"]).is_file()
    # The config Kiln runs with in compose, checked by the binary itself.
    source, target = kiln["volumes"][0].split(":")[:2]
    assert target == "/etc/kiln/kiln.yaml" and kiln["command"] == ["--config", target]
    config_path = DEPLOY / source
    assert kiln_config_check(config_path).returncode == 0
    config = yaml.safe_load(config_path.read_text())
    assert config["storage"]["backend"] == "s3"
    s3 = config["storage"]["s3"]
    assert s3["endpoint"] == "http://minio:9000"
    minio = services["minio"]["environment"]
    assert (s3["access_key_id"], s3["secret_access_key"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    assert f"store/{s3['bucket']}" in services["create-bucket"]["command"][0]
    http_port = config["http_addr"].rsplit(":", 1)[1]
    assert f"{http_port}:{http_port}" in kiln["ports"]
    # Grafana's Pyroscope data source points at Kiln's HTTP port.
    datasources = yaml.safe_load(
        (DEPLOY / "compose/grafana/provisioning/datasources/kiln.yaml").read_text()
    )["datasources"]
    assert [d["type"] for d in datasources] == ["grafana-pyroscope-datasource"]
    assert datasources[0]["url"] == f"http://kiln:{http_port}"
    grafana_mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert (DEPLOY / grafana_mounts["/etc/grafana/provisioning"]).is_dir()
    dashboard = json.loads((DEPLOY / "compose/grafana/dashboards/example-app.json").read_text())
    panels = {p["type"]: p for p in dashboard["panels"]}
    assert panels["flamegraph"]["targets"][0]["datasource"]["uid"] == datasources[0]["uid"]
    selector = panels["flamegraph"]["targets"][0]["labelSelector"]
    # The agent in the example app pushes to the same Kiln.
    app = services["example-app"]
    assert app["environment"]["PYROSCOPE_SERVER_ADDRESS"] == f"http://kiln:{http_port}"
    assert f'service_name="{app["environment"]["PYROSCOPE_APPLICATION_NAME"]}"' in selector
    assert (DEPLOY / app["build"]["context"] / "Dockerfile").is_file()


def agent_python():
    home = Path(os.environ.get("KILN_AGENTS_HOME", Path.home() / ".cache" / "kiln-agents"))
    python = home / "venv" / "bin" / "python"
    if not python.is_file():
        pytest.fail(f"{python} not found: run tests/agents/install.sh (or .ci/run)")
    return str(python)


def http_json(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_example_app_agent_pushes_profiles_grafana_can_query(tmp_path):
    """Runs the compose example app (the real pyroscope-io agent) against a
    real Kiln and asks for its flame graph with the call Grafana's Pyroscope
    data source makes (querier.v1 SelectMergeStacktraces over Connect)."""
    log = open(tmp_path / "kiln.log", "w+")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    kiln = subprocess.Popen(
        [kiln_bin(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            assert kiln.poll() is None, open(tmp_path / "kiln.log").read()
            m = re.search(r"http_addr=(127\.0\.0\.1:\d+)", open(tmp_path / "kiln.log").read())
            if m:
                url = f"http://{m.group(1)}"
            else:
                time.sleep(0.1)
        assert url, "kiln did not log its address"
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url + "/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        app = subprocess.run(
            [agent_python(), str(DEPLOY / "compose/example-app/app.py")],
            env={**env, "PYROSCOPE_SERVER_ADDRESS": url, "PYROSCOPE_APPLICATION_NAME": "example-app",
                 "EXAMPLE_APP_SECONDS": "3", "EXAMPLE_APP_ENV": "test"},
            capture_output=True, text=True, timeout=120,
        )
        assert app.returncode == 0, app.stderr
        now = int(time.time() * 1000)
        query = {
            "profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "labelSelector": '{service_name="example-app"}',
            "start": now - 3_600_000,
            "end": now + 60_000,
            "maxNodes": 1024,
        }
        names = []
        while time.monotonic() < deadline + 30:
            result = http_json(url + "/querier.v1.QuerierService/SelectMergeStacktraces", query)
            names = result.get("flamegraph", {}).get("names", [])
            if any("fibonacci" in n for n in names):
                break
            time.sleep(0.5)
        assert any("fibonacci" in n for n in names), names[:50]
        assert any("handle_request" in n for n in names), names[:50]
        # The other calls behind the dashboard: the profile-type picker and
        # the time-series panel.
        types = http_json(url + "/querier.v1.QuerierService/ProfileTypes",
                          {"start": query["start"], "end": query["end"]})
        assert query["profileTypeID"] in [t["ID"] for t in types["profileTypes"]], types
        series = http_json(url + "/querier.v1.QuerierService/SelectSeries",
                           {**query, "groupBy": [], "step": 15.0})["series"]
        assert series and sum(float(p["value"]) for p in series[0]["points"]) > 0, series
    finally:
        kiln.send_signal(signal.SIGTERM)
        try:
            kiln.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kiln.kill()
        log.close()


# --- Dockerfile and README -----------------------------------------------------------


def dockerfile_build_commands():
    """The commands of the builder stage's RUN lines that invoke cargo."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    stages = re.split(r"^FROM ", text, flags=re.M)
    builder = next(s for s in stages if re.match(r"\S+ AS builder", s))
    commands = []
    for line in builder.splitlines():
        if line.startswith("RUN "):
            for part in line[4:].split("&&"):
                if shlex.split(part)[0] == "cargo":
                    commands.append(" ".join(shlex.split(part)))
    return commands


def readme_shell_lines():
    text = (ROOT / "README.md").read_text()
    lines = set()
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line:
                try:
                    lines.add(" ".join(shlex.split(line)))
                except ValueError:
                    lines.add(" ".join(line.split()))
    return lines


def test_dockerfile_builds_with_the_commands_the_readme_documents():
    commands = dockerfile_build_commands()
    assert commands == ["cargo build --release --locked"], commands
    documented = readme_shell_lines()
    for command in commands:
        assert command in documented, f"README documents no `{command}`"
    # The image copies the binary that command produces.
    assert "COPY --from=builder /src/target/release/kiln /usr/local/bin/kiln" in (
        DEPLOY / "Dockerfile"
    ).read_text()
    # The runtime stage does not run as root.
    runtime = (DEPLOY / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    user = re.findall(r"^USER (\S+)", runtime, re.M)
    assert user and not user[-1].startswith(("0", "root")), user


def test_readme_deploy_section_walks_from_helm_install_to_grafana():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]
    for needed in ["helm install", "docker build -f deploy/Dockerfile", "grafana-pyroscope-datasource",
                   "docker compose -f deploy/docker-compose.yaml up", ":4040"]:
        assert needed in section, needed
    for path in re.findall(r"`((?:deploy|helm)/[^`\s]+)`", section):
        assert (ROOT / path).exists(), f"README names {path}, which does not exist"


def test_chart_defaults_agree_with_kiln_config_defaults():
    """Values the chart writes into kiln.yaml by default must be Kiln's own
    defaults (except where the chart means to differ: data_dir and the
    S3 bucket name), so the two cannot drift apart."""
    defaults = yaml.safe_load(
        subprocess.run([kiln_bin(), "config", "defaults"], capture_output=True, text=True, check=True).stdout
    )
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["kiln"]["log"] == defaults["log"]
    assert values["multitenancy"] == defaults["multitenancy"]
    assert values["auth"]["enabled"] == defaults["auth"]["enabled"]
    assert values["runtimeConfig"]["period"] == defaults["runtime_config"]["period"]
    # The schema's limit keys are Kiln's (limits and overrides use them).
    limit_keys = set(schema()["$defs"]["tenantLimits"]["properties"])
    assert limit_keys == set(defaults["limits"])
    # ... and its credential keys are Kiln's.
    credential_keys = set(schema()["properties"]["auth"]["properties"]["credentials"]["items"]["properties"])
    assert credential_keys == {"tenant", "token", "token_sha256", "username", "password", "scopes"}
    assert values["ports"]["http"] == int(defaults["http_addr"].rsplit(":", 1)[1])
    assert values["ports"]["grpc"] == int(defaults["grpc_addr"].rsplit(":", 1)[1])
    s3 = values["storage"]["s3"]
    assert s3["region"] == defaults["storage"]["s3"]["region"]
    assert s3["forcePathStyle"] == defaults["storage"]["s3"]["force_path_style"]
    assert s3["allowHttp"] == defaults["storage"]["s3"]["allow_http"]
    # Every section a user may pass through kiln.config exists in Kiln.
    for path in EXAMPLE_VALUES:
        for section in (yaml.safe_load(path.read_text()).get("kiln", {}).get("config") or {}):
            assert section in defaults, f"{path.name}: kiln.config.{section} is no Kiln setting"


def test_image_and_chart_agree(renderings):
    """The chart relies on the image: its user, its data directory, the
    binary's path and a /bin/sh for the metastore's node-id command."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    runtime = dockerfile.rsplit("\nFROM ", 1)[1]
    base = runtime.split()[0]
    assert base.startswith("debian:"), f"the metastore command needs /bin/sh; {base} may lack it"
    uid, gid = re.findall(r"^USER (\d+):(\d+)", runtime, re.M)[-1]
    volume = json.loads(re.findall(r"^VOLUME (\[.*\])", runtime, re.M)[-1])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsGroup"] == int(gid)
    docs = [d for _, d in chart_render.documents(renderings["microservices-defaults"])]
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet"):
            continue
        container = d["spec"]["template"]["spec"]["containers"][0]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert [mounts["data"]] == volume, d["metadata"]["name"]
        for part in container.get("command", []):
            for binary in re.findall(r"/usr/local/bin/\w+", part):
                assert f"/src/target/release/kiln {binary}" in dockerfile
    config = yaml.safe_load(rendered_kiln_yaml(renderings["microservices-defaults"]))
    assert [config["data_dir"]] == volume


def test_local_cluster_stop_signals_only_its_own_nodes(tmp_path):
    """deploy/local/cluster.sh stop: a node that died leaves its pid file
    behind and the kernel reuses pids, so stop must check that the process
    behind a pid file is still that node before signalling it."""
    data = tmp_path / "cluster"
    (data / "pids").mkdir(parents=True)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    # A live node: its command line names its data directory, as the
    # commands cluster.sh writes do (`--data-dir DIR/<node>`).
    node = subprocess.Popen(sleeper + ["--data-dir", str(data / "ingester-1")])
    # An unrelated process holding the pid a dead node had.
    stranger = subprocess.Popen(sleeper)
    try:
        (data / "pids" / "ingester-1.pid").write_text(f"{node.pid}\n")
        (data / "pids" / "ingester-2.pid").write_text(f"{stranger.pid}\n")
        # A pid that no longer exists at all.
        (data / "pids" / "querier-1.pid").write_text("999999\n")
        subprocess.run(
            ["bash", str(DEPLOY / "local" / "cluster.sh"), "stop", "--data-dir", str(data)],
            check=True, timeout=60,
        )
        assert node.wait(timeout=10) == -signal.SIGTERM
        assert stranger.poll() is None, "stop signalled a process that is not its node"
        assert not list((data / "pids").glob("*.pid"))
    finally:
        for p in (node, stranger):
            if p.poll() is None:
                p.kill()
                p.wait()
