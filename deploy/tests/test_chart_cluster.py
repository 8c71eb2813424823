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
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import chart_render  # noqa: E402
from test_deploy import kiln_bin  # noqa: E402

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


def http(url, data=None, timeout=10):
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


@pytest.mark.parametrize("mode", ["single-binary", "microservices"])
def test_chart_rendering_runs_and_answers(mode, tmp_path):
    http_port, grpc_port, s3_port = free_port(), free_port(), free_port()
    (tmp_path / "s3" / "kiln").mkdir(parents=True)
    processes = []
    logs = {}
    try:
        s3 = subprocess.Popen(
            [s3s_fs(), "--host", "127.0.0.1", "--port", str(s3_port),
             "--access-key", "deploytest", "--secret-key", "deploytest-secret", str(tmp_path / "s3")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        processes.append(("s3s-fs", s3))
        wait_for("s3s-fs", lambda: socket.create_connection(("127.0.0.1", s3_port), timeout=1).close() or True)

        values = {
            "mode": mode,
            "ports": {"http": http_port, "grpc": grpc_port},
            "storage": {"s3": {
                "endpoint": f"http://127.0.0.1:{s3_port}", "allowHttp": True,
                "accessKeyId": "deploytest", "secretAccessKey": "deploytest-secret",
            }},
        }
        docs = [d for _, d in chart_render.documents(chart_render.render(values))]
        config_text = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["kiln.yaml"]
        secret = next(d for d in docs if d["kind"] == "Secret")["stringData"]
        backend = yaml.safe_load(config_text)["storage"]["backend"]
        assert backend == {"single-binary": "filesystem", "microservices": "s3"}[mode]
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
            (data_dir / "kiln.yaml").write_text(config)
            env = {"PATH": os.environ["PATH"]}
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] == "kiln"
                env.update(secret)
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
            logs[pod_name] = tmp_path / f"{pod_name}.log"
            processes.append((pod_name, subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)))

        def tail(pod_name):
            return f"--- {pod_name}\n" + "".join(open(logs[pod_name]).readlines()[-15:])

        for _, pod_name, ip in pods:
            proc = dict(processes)[pod_name]

            def ready(ip=ip, proc=proc, pod_name=pod_name):
                assert proc.poll() is None, tail(pod_name)
                return http(f"http://{ip}:{http_port}/ready", timeout=2)[0] == 200

            try:
                wait_for(f"{pod_name} to be ready", ready, timeout=90)
            except BaseException:
                print("\n".join(tail(p) for p in logs))
                raise

        kinds = {pod_name: w["metadata"]["name"] for w, pod_name, _ in pods}
        if mode == "microservices":
            distributor = next(ip for _, p, ip in pods if kinds[p] == "kiln-distributor")
            # Queries go to the query-frontends (Grafana's URL); the queriers
            # answer them directly too.
            queriers = [
                next(ip for _, p, ip in pods if kinds[p] == "kiln-query-frontend" and ip.endswith(".2")),
                next(ip for _, p, ip in pods if kinds[p] == "kiln-querier" and ip.endswith(".1")),
            ]
            # Every metastore replica took the node id of its ordinal.
            for p in ("kiln-metastore-0", "kiln-metastore-1", "kiln-metastore-2"):
                assert f"node_id={int(p[-1]) + 1}" in open(logs[p]).read(), tail(p)
        else:
            assert list(kinds.items()) == [("kiln-0", "kiln")]
            distributor = pods[0][2]
            queriers = [distributor]

        status, _ = http(
            f"http://{distributor}:{http_port}/ingest?name=deploytest.cpu%7Benv%3Dchart%7D&from=now&until=now",
            data=b"main;serve;render_page 30\nmain;idle 10",
        )
        assert status == 200
        query = urllib.parse.urlencode({"query": "deploytest.cpu{env=\"chart\"}", "from": "now-1h", "until": "now"})

        def answered(querier):
            _, body = http(f"http://{querier}:{http_port}/pyroscope/render?{query}")
            flamebearer = json.loads(body)["flamebearer"]
            # 40 samples at the default 100 Hz, reported in nanoseconds.
            return flamebearer["numTicks"] == 40 * 10_000_000 and "render_page" in flamebearer["names"]

        for querier in queriers:
            try:
                wait_for(f"the pushed profile at {querier}", lambda: answered(querier), timeout=30)
            except BaseException:
                print(http(f"http://{querier}:{http_port}/pyroscope/render?{query}")[1][:1000])
                print("\n".join(tail(p) for p in logs))
                raise
    finally:
        for _, proc in reversed(processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in processes:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
