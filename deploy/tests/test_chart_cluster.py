"""Runs the chart's renderings (both modes) as real processes.

Every pod of the rendered Deployments and StatefulSets becomes a `kiln`
process started with the pod's own command, arguments, environment
(downward-API fields, `$(VAR)` expansion, Secrets loaded with envFrom) and
the rendered kiln.yaml, as Kubernetes would start it. What a cluster
provides is simulated: each pod gets its own loopback address (127.0.G.I)
standing in for its pod IP, the headless-service DNS names in the config
and environment are replaced by those addresses, `0.0.0.0` by the pod's
address (its own network namespace), and the data volume by a temp dir.
The bucket of microservices mode is a local s3s-fs (installed by .ci/run);
single-binary mode keeps its default, the filesystem of its volume. A
profile pushed to a distributor must then come back from the query
frontend and from a querier.

The ConfigMap and Secret volumes are laid out the way the kubelet writes
them (each file a symlink through `..data` to a timestamped directory,
updated by swapping `..data`), so that an update of the ConfigMap reaches
running pods as it would in a cluster. With auth on, the pods must refuse
unauthenticated and under-scoped requests and serve authenticated ones;
per-tenant overrides must apply, and an upgrade that changes only them must
leave the pod templates alone and still take effect in the running pods.
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import chart_render  # noqa: E402
from test_deploy import agent_python, kiln_bin  # noqa: E402

K8S_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value, env):
    """Kubernetes' $(VAR) expansion: known variables are replaced, $$ is $."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return K8S_VAR.sub(sub, value)


def free_port():
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def s3s_fs():
    path = os.environ.get("KILN_S3S_FS") or str(Path.home() / ".cache/kiln-tools/bin/s3s-fs")
    if not Path(path).is_file():
        pytest.fail(f"s3s-fs not found at {path}: run .ci/run (it installs s3s-fs 0.14.1) or set KILN_S3S_FS")
    return path


def wait_for(what, predicate, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - reported on timeout
            last = e
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what} (last error: {last})")


def http(url, data=None, timeout=10, headers=None):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


def call(url, data=None, headers=None, timeout=10):
    """(status, headers, body) of a request, error statuses included."""
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                     headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def kubelet_write(directory, files):
    """Writes a ConfigMap or Secret volume as the kubelet's AtomicWriter
    does: the files go to a new timestamped directory, `..data` is switched
    to it with one rename, and each visible file is a symlink through
    `..data`. Calling it again is how a changed ConfigMap reaches a pod."""
    directory.mkdir(parents=True, exist_ok=True)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    stamp = directory / f"..{time.time_ns()}"
    stamp.mkdir()
    for name, text in files.items():
        (stamp / name).write_text(text)
    tmp_link = directory / "..data_tmp"
    tmp_link.symlink_to(stamp.name)
    os.rename(tmp_link, directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")
    if old:
        shutil.rmtree(directory / old)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def ticks(querier_url, selector, headers=None):
    query = urllib.parse.urlencode({"query": selector, "from": "now-1h", "until": "now"})
    status, _, body = call(f"{querier_url}/pyroscope/render?{query}", headers=headers)
    assert status == 200, body[:500]
    flamebearer = json.loads(body)["flamebearer"]
    return flamebearer["numTicks"], flamebearer["names"]


class Cluster:
    """The pods of a rendering, running. `pods` is [(workload, pod name, ip)]."""

    def __init__(self, values, tmp_path):
        self.values = values
        self.tmp_path = tmp_path
        self.http_port = values["ports"]["http"]
        self.processes = []
        self.logs = {}
        self.volumes = {}

    def url(self, ip):
        return f"http://{ip}:{self.http_port}"

    def ips(self, workload):
        return [ip for _, p, ip in self.pods if self.kinds[p] == workload]

    def tail(self, pod_name):
        return f"--- {pod_name}\n" + "".join(open(self.logs[pod_name]).readlines()[-15:])

    def dump(self):
        print("\n".join(self.tail(p) for p in self.logs))

    def start(self):
        tmp_path = self.tmp_path
        self.rendered = chart_render.render(self.values)
        docs = [d for _, d in chart_render.documents(self.rendered)]
        config_map = next(d for d in docs if d["kind"] == "ConfigMap")
        config_text = self.config_text = config_map["data"]["kiln.yaml"]
        secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
        hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
        workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]

        # Pods, with a loopback address each.
        pods = []
        for group, w in enumerate(sorted(workloads, key=lambda w: w["metadata"]["name"]), start=1):
            name = w["metadata"]["name"]
            replicas = w["spec"].get("replicas") or hpas[name]["spec"]["minReplicas"]
            for i in range(replicas):
                pod_name = f"{name}-{i}" if w["kind"] == "StatefulSet" else f"{name}-pod{i}"
                pods.append((w, pod_name, f"127.0.{group}.{i + 1}"))
        self.pods = pods
        self.kinds = {pod_name: w["metadata"]["name"] for w, pod_name, _ in pods}
        address_of = {pod_name: ip for _, pod_name, ip in pods}

        def resolve(text):
            # <pod>.<headless service>.<namespace>.svc.<domain> -> the pod's address
            return re.sub(
                r"([a-z0-9-]+)\.[a-z0-9-]+-headless\.kiln\.svc\.cluster\.local",
                lambda m: address_of[m.group(1)], text,
            )

        for w, pod_name, ip in pods:
            spec = w["spec"]["template"]["spec"]
            container = spec["containers"][0]
            data_dir = tmp_path / "pods" / pod_name
            data_dir.mkdir(parents=True)
            config = resolve(config_text).replace("0.0.0.0:", f"{ip}:")
            config = config.replace("data_dir: /var/lib/kiln", f"data_dir: {data_dir}")
            # ConfigMap and Secret volumes: one directory per volume, shared
            # by the pods (as one object is shared in a cluster); the paths
            # kiln.yaml names under their mount points move there.
            volumes = {v["name"]: v for v in spec["volumes"]}
            for mount in container["volumeMounts"]:
                volume = volumes.get(mount["name"], {})
                if "configMap" in volume:
                    files = config_map["data"]
                elif "secret" in volume:
                    data = secrets[volume["secret"]["secretName"]]
                    files = {i["path"]: data[i["key"]] for i in volume["secret"]["items"]}
                else:
                    continue
                local = tmp_path / "volumes" / mount["name"]
                if mount["name"] not in self.volumes:
                    kubelet_write(local, files)
                    self.volumes[mount["name"]] = local
                config = config.replace(mount["mountPath"] + "/", f"{local}/")
            (data_dir / "kiln.yaml").write_text(config)
            env = {"PATH": os.environ["PATH"]}
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] == "kiln"
                env.update(secrets["kiln"])
            fields = {"metadata.name": pod_name, "status.podIP": ip}
            for var in container["env"]:
                if "valueFrom" in var:
                    env[var["name"]] = fields[var["valueFrom"]["fieldRef"]["fieldPath"]]
                else:
                    env[var["name"]] = resolve(expand(var["value"], env))
            argv = [expand(a, env) for a in container.get("command", []) + container["args"]]
            argv = [a.replace("/usr/local/bin/kiln", kiln_bin()) for a in argv]
            argv = [a.replace("--config=/etc/kiln/kiln.yaml", f"--config={data_dir / 'kiln.yaml'}") for a in argv]
            if not container.get("command"):
                argv = [kiln_bin()] + argv
            log = open(tmp_path / f"{pod_name}.log", "w")
            self.logs[pod_name] = tmp_path / f"{pod_name}.log"
            self.processes.append((pod_name, subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)))

        for _, pod_name, ip in pods:
            proc = dict(self.processes)[pod_name]

            def ready(ip=ip, proc=proc, pod_name=pod_name):
                assert proc.poll() is None, self.tail(pod_name)
                # The readiness probe carries no credentials.
                return http(f"{self.url(ip)}/ready", timeout=2)[0] == 200

            try:
                wait_for(f"{pod_name} to be ready", ready, timeout=90)
            except BaseException:
                self.dump()
                raise

    def stop(self):
        for _, proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def running(mode, tmp_path, **values):
    """The chart's rendering for `mode` (and `values`) running on loopback
    addresses, with an s3s-fs bucket."""
    http_port, grpc_port, s3_port = free_port(), free_port(), free_port()
    (tmp_path / "s3" / "kiln").mkdir(parents=True)
    s3 = subprocess.Popen(
        [s3s_fs(), "--host", "127.0.0.1", "--port", str(s3_port),
         "--access-key", "deploytest", "--secret-key", "deploytest-secret", str(tmp_path / "s3")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    cluster = Cluster({
        "mode": mode,
        "ports": {"http": http_port, "grpc": grpc_port},
        "storage": {"s3": {
            "endpoint": f"http://127.0.0.1:{s3_port}", "allowHttp": True,
            "accessKeyId": "deploytest", "secretAccessKey": "deploytest-secret",
        }},
        **values,
    }, tmp_path)
    try:
        wait_for("s3s-fs", lambda: socket.create_connection(("127.0.0.1", s3_port), timeout=1).close() or True)
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        s3.terminate()
        s3.wait(timeout=30)


@pytest.mark.parametrize("mode", ["single-binary", "microservices"])
def test_chart_rendering_runs_and_answers(mode, tmp_path):
    with running(mode, tmp_path) as cluster:
        config = yaml.safe_load(cluster.config_text)
        assert config["storage"]["backend"] == {"single-binary": "filesystem", "microservices": "s3"}[mode]
        if mode == "microservices":
            distributor = cluster.ips("kiln-distributor")[0]
            # Queries go to the query-frontends (Grafana's URL); the queriers
            # answer them directly too.
            queriers = [cluster.ips("kiln-query-frontend")[1], cluster.ips("kiln-querier")[0]]
            # Every metastore replica took the node id of its ordinal.
            for p in ("kiln-metastore-0", "kiln-metastore-1", "kiln-metastore-2"):
                assert f"node_id={int(p[-1]) + 1}" in open(cluster.logs[p]).read(), cluster.tail(p)
        else:
            assert list(cluster.kinds.items()) == [("kiln-0", "kiln")]
            distributor = cluster.pods[0][2]
            queriers = [distributor]

        status, _ = http(
            f"{cluster.url(distributor)}/ingest?name=deploytest.cpu%7Benv%3Dchart%7D&from=now&until=now",
            data=b"main;serve;render_page 30\nmain;idle 10",
        )
        assert status == 200

        def answered(querier):
            total, names = ticks(cluster.url(querier), 'deploytest.cpu{env="chart"}')
            # 40 samples at the default 100 Hz, reported in nanoseconds.
            return total == 40 * 10_000_000 and "render_page" in names

        for querier in queriers:
            try:
                wait_for(f"the pushed profile at {querier}", lambda: answered(querier), timeout=30)
            except BaseException:
                cluster.dump()
                raise


CREDENTIALS = [
    {"tenant": "team-a", "token": "agent-token-a", "scopes": ["write"]},
    {"tenant": "team-a", "username": "grafana", "password": "grafana-a", "scopes": ["read"]},
    # The example app's agent (pyroscope-io) with basic auth.
    {"tenant": "team-a", "username": "agent", "password": "agent-a", "scopes": ["write"]},
    # sha256("token-b"): the chart's Secret need not hold the token itself.
    {"tenant": "team-b", "token_sha256": hashlib.sha256(b"token-b").hexdigest()},
]


CLUSTER_SECRET = "deploytest-cluster-secret-42"


@pytest.mark.parametrize("mode", ["single-binary", "microservices"])
def test_chart_rendering_with_auth_and_overrides(mode, tmp_path):
    """Auth and multi-tenancy on, team-b limited to one label per series by
    an override. Unauthenticated and under-scoped pushes and queries are
    refused; the credentials' own tenants are served; the pods call each
    other with the cluster secret, which the metastore requires of any
    other caller. Then an upgrade that
    lifts the override keeps every pod template as it was, and once the new
    ConfigMap is in the pods' volume, team-b's push is accepted."""
    values = {
        "multitenancy": {"enabled": True},
        "auth": {"enabled": True, "credentials": CREDENTIALS},
        "overrides": {"team-b": {"max_label_names": 1}},
        "runtimeConfig": {"period": "500ms"},
        "clusterSecret": {"value": CLUSTER_SECRET},
    }
    with running(mode, tmp_path, **values) as cluster:
        if mode == "microservices":
            distributor = cluster.url(cluster.ips("kiln-distributor")[0])
            queriers = [cluster.url(cluster.ips("kiln-query-frontend")[0]),
                        cluster.url(cluster.ips("kiln-querier")[1])]
            # The pods talk to each other with the cluster secret (they
            # became ready, and the pushes below cross them); a caller
            # without it is refused by the metastore, one with it served.
            metastore = f"{cluster.ips('kiln-metastore')[0]}:{cluster.values['ports']['grpc']}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
            ls = [kiln_bin(), "blocks", "ls", "--metastore", metastore, "--tenant", "team-a"]
            refused = subprocess.run(ls, env=env, capture_output=True, text=True, timeout=60)
            assert refused.returncode != 0 and "cluster secret" in refused.stderr, refused.stderr
            served = subprocess.run(ls, env={**env, "KILN_CLUSTER__SECRET": CLUSTER_SECRET},
                                    capture_output=True, text=True, timeout=60)
            assert served.returncode == 0, served.stderr
        else:
            distributor = cluster.url(cluster.pods[0][2])
            queriers = [distributor]
        push_a = f"{distributor}/ingest?name=deploytest-a.cpu%7Benv%3Dauth%7D&from=now&until=now"
        push_b = f"{distributor}/ingest?name=deploytest-b.cpu%7Benv%3Dauth%7D&from=now&until=now"
        profile = b"main;serve;render_page 30\nmain;idle 10"

        # Pushes: no credentials, an unknown token, a read-only credential.
        status, headers, body = call(push_a, profile)
        assert status == 401, body
        assert headers["WWW-Authenticate"].startswith("Bearer"), headers
        assert call(push_a, profile, bearer("not-a-token"))[0] == 401
        assert call(push_a, profile, basic("grafana", "wrong"))[0] == 401
        status, _, body = call(push_a, profile, basic("grafana", "grafana-a"))
        assert status == 403 and b"write" in body, body
        # ... a credential for team-a naming another tenant.
        status, _, body = call(push_a, profile, {**bearer("agent-token-a"), "X-Scope-OrgID": "team-b"})
        assert status == 403, body
        # The agent's token; its tenant comes from the credential.
        status, _, body = call(push_a, profile, bearer("agent-token-a"))
        assert status == 200, body
        # team-b's override (one label per series) is in force from the start.
        status, _, body = call(push_b, profile, bearer("token-b"))
        assert status == 400 and b"labels in series" in body, body

        for querier in queriers:
            selector = 'deploytest-a.cpu{env="auth"}'
            query = urllib.parse.urlencode({"query": selector, "from": "now-1h", "until": "now"})
            assert call(f"{querier}/pyroscope/render?{query}")[0] == 401
            assert call(f"{querier}/pyroscope/render?{query}", headers=bearer("agent-token-a"))[0] == 403
            try:
                wait_for(f"team-a's profile at {querier}",
                         lambda: ticks(querier, selector, basic("grafana", "grafana-a"))[0] == 40 * 10_000_000,
                         timeout=30)
            except BaseException:
                cluster.dump()
                raise
            # team-b's credential sees team-b only.
            assert ticks(querier, selector, bearer("token-b"))[0] == 0
            status, _, _ = call(f"{querier}/pyroscope/render?{query}",
                                headers={**bearer("token-b"), "X-Scope-OrgID": "team-a"})
            assert status == 403

        # A real agent (the compose example app, pyroscope-io) pushing with
        # basic auth; Grafana's call finds its functions in team-a.
        app = subprocess.run(
            [agent_python(), str(chart_render.ROOT / "deploy/compose/example-app/app.py")],
            env={"PATH": os.environ["PATH"], "PYROSCOPE_SERVER_ADDRESS": distributor,
                 "PYROSCOPE_APPLICATION_NAME": "example-app", "EXAMPLE_APP_SECONDS": "3",
                 "EXAMPLE_APP_ENV": "auth", "PYROSCOPE_BASIC_AUTH_USER": "agent",
                 "PYROSCOPE_BASIC_AUTH_PASSWORD": "agent-a"},
            capture_output=True, text=True, timeout=120,
        )
        assert app.returncode == 0, app.stderr
        now = int(time.time() * 1000)
        merge = json.dumps({
            "profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "labelSelector": '{service_name="example-app"}',
            "start": now - 3_600_000, "end": now + 60_000, "maxNodes": 1024,
        }).encode()

        def agent_functions(querier, credential):
            status, _, body = call(f"{querier}/querier.v1.QuerierService/SelectMergeStacktraces", merge,
                                   {**credential, "Content-Type": "application/json"})
            assert status == 200, body[:300]
            return json.loads(body).get("flamegraph", {}).get("names", [])

        for querier in queriers:
            wait_for(f"the agent's profile at {querier}",
                     lambda: any("fibonacci" in n for n in agent_functions(querier, basic("grafana", "grafana-a"))),
                     timeout=30)
            assert not any("fibonacci" in n for n in agent_functions(querier, bearer("token-b")))

        # The upgrade: the override is lifted. Only the ConfigMap's
        # overrides.yaml changes; the pod templates (and so the pods) stay.
        upgraded = chart_render.render({**cluster.values, "overrides": {"team-b": {}}})
        before = {p: chart_render.documents({p: t})[0][1] for p, t in cluster.rendered.items()}
        after = {p: chart_render.documents({p: t})[0][1] for p, t in upgraded.items()}
        assert before.keys() == after.keys()
        for path in before:
            if path.endswith("configmap.yaml"):
                assert before[path]["data"]["kiln.yaml"] == after[path]["data"]["kiln.yaml"]
                assert before[path]["data"]["overrides.yaml"] != after[path]["data"]["overrides.yaml"]
            else:
                assert before[path] == after[path], path
        config_map = next(d for d in after.values() if d["kind"] == "ConfigMap")
        kubelet_write(cluster.volumes["config"], config_map["data"])

        def accepted():
            status, _, body = call(push_b, profile, bearer("token-b"))
            assert status in (200, 400), body
            return status == 200

        wait_for("team-b's push after the overrides changed", accepted, timeout=20)
        for pod_name, proc in cluster.processes:
            assert proc.poll() is None, cluster.tail(pod_name)
        ingesting = [p for p in cluster.logs if cluster.kinds[p] in ("kiln", "kiln-distributor")]
        assert any("overrides reloaded" in open(cluster.logs[p]).read() for p in ingesting)
        for querier in queriers:
            wait_for(f"team-b's profile at {querier}",
                     lambda: ticks(querier, 'deploytest-b.cpu{env="auth"}', bearer("token-b"))[0] == 40 * 10_000_000,
                     timeout=30)
