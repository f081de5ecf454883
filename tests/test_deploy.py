"""The Kubernetes manifests in deploy/: schema-valid, consistent with each other, with the
Dockerfile, the exporter's config validation, the benchmarks and the alert rules."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.config.model import ConfigError, parse_config
from tests.conftest import require_tool
from tests.project import ROOT

KUBERNETES = ROOT / "deploy/kubernetes"
BASE = KUBERNETES / "base"
OPERATOR = KUBERNETES / "operator"
RULES = ROOT / "prometheus/podero.rules.yml"
NAME = "podero-exporter"

# The oldest Kubernetes that sets the apps.kubernetes.io/pod-index label, and the newest
# kubernetes-validate ships schemas for.
KUBERNETES_VERSIONS = ("1.28", "1.37")
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def manifest_files() -> list[Path]:
    """Every Kubernetes object file under deploy/kubernetes (not the kustomizations)."""
    return sorted(p for p in KUBERNETES.rglob("*.yaml") if p.name != "kustomization.yaml")


def kustomization_dirs() -> list[Path]:
    return sorted(p.parent for p in KUBERNETES.rglob("kustomization.yaml"))


# --- a kustomize build of the features these kustomizations use -------------------------

SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "replicas", "replacements", "images"}


def _segments(field_path: str) -> list[str]:
    return field_path.split(".")


def _step(node: Any, segment: str) -> Any:
    match = re.fullmatch(r"\[(\w+)=(.+)\]", segment)
    if match is None:
        return node[segment]
    key, value = match.groups()
    return next(item for item in node if item.get(key) == value)


def get_field(obj: dict[str, Any], field_path: str) -> Any:
    node: Any = obj
    for segment in _segments(field_path):
        node = _step(node, segment)
    return node


def set_field(obj: dict[str, Any], field_path: str, value: Any) -> None:
    *parents, last = _segments(field_path)
    node: Any = obj
    for segment in parents:
        node = _step(node, segment)
    # kustomize writes a copied number into a string field as a string.
    node[last] = str(value) if isinstance(node.get(last), str) else value


def _find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [r for r in resources if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} resources {kind}/{name}"
    return found[0]


def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """`kustomize build` for resources, images, replicas and replacements, in kustomize's
    order (a base's transformers first, then the overlay's: images, replicas, replacements)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED_KEYS
    assert not unsupported, f"extend this emulation for {sorted(unsupported)}"
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += kustomize_build(path) if path.is_dir() else load_all(path)
    resources = copy.deepcopy(resources)
    for image in kustomization.get("images", []):
        for resource in resources:
            for container in _containers(resource):
                name, _, tag = container["image"].partition(":")
                if name == image["name"]:
                    new_name = image.get("newName", name)
                    container["image"] = f"{new_name}:{image.get('newTag', tag)}"
    for entry in kustomization.get("replicas", []):
        for resource in resources:
            if resource["metadata"]["name"] == entry["name"] and "replicas" in resource["spec"]:
                resource["spec"]["replicas"] = entry["count"]
    for replacement in kustomization.get("replacements", []):
        source = replacement["source"]
        value = get_field(_find(resources, source["kind"], source["name"]), source["fieldPath"])
        for target in replacement["targets"]:
            selected = _find(resources, target["select"]["kind"], target["select"]["name"])
            for field_path in target["fieldPaths"]:
                set_field(selected, field_path, value)
    return resources


def _containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    if resource["kind"] != "StatefulSet":
        return []
    containers: list[dict[str, Any]] = resource["spec"]["template"]["spec"]["containers"]
    return containers


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = require_tool("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def by_key(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def readme_kustomizations() -> list[str]:
    """The kustomizations the README's Kubernetes section shows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return [b for b in blocks if "kind: Kustomization" in b]


def readme_overlays() -> list[str]:
    """The README's overlays that set the replica count (the shard count)."""
    overlays = [b for b in readme_kustomizations() if "\nreplicas:" in b]
    assert overlays, "the Kubernetes docs show no overlay"
    return overlays


def readme_tls_overlay(directory: Path) -> Path:
    """The README's overlay for a web config with TLS and basic auth, on this checkout's base."""
    (text,) = [b for b in readme_kustomizations() if "--web.config.file" in b]
    kustomization = yaml.safe_load(text)
    assert kustomization["resources"] == ["../podero-exporter/deploy/kubernetes/base"]
    directory.mkdir(exist_ok=True)
    kustomization["resources"] = [os.path.relpath(BASE, directory)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def readme_overlay(text: str, directory: Path) -> Path:
    """A documented overlay, written to `directory`, on the base of this checkout."""
    kustomization = yaml.safe_load(text)
    assert kustomization["resources"][0].endswith("deploy/kubernetes/operator")
    directory.mkdir(exist_ok=True)
    kustomization["resources"] = [os.path.relpath(OPERATOR, directory)]
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def base() -> dict[tuple[str, str], dict[str, Any]]:
    return by_key(kustomize_build(BASE))


def statefulset() -> dict[str, Any]:
    return base()[("StatefulSet", NAME)]


def container() -> dict[str, Any]:
    (only,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(name: str) -> dict[str, Any]:
    return dict(next(e for e in container()["env"] if e["name"] == name))


def shard_count_and_replicas(resources: list[dict[str, Any]]) -> tuple[Any, Any]:
    sts = by_key(resources)[("StatefulSet", NAME)]
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    count = next(e for e in c["env"] if e["name"] == "PODERO_SHARD_COUNT")["value"]
    return count, sts["spec"]["replicas"]


# --- schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "path", manifest_files(), ids=lambda p: p.relative_to(KUBERNETES).as_posix()
)
def test_every_manifest_validates_strictly(path: Path, version: str) -> None:
    for resource in load_all(path):
        if resource["kind"] in OPERATOR_KINDS:
            # No schema for the operator's kinds: check their metadata as any object's.
            probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource["metadata"]}
            kubernetes_validate.validate(probe, version, strict=True)
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(resource, version, strict=True)
        else:
            kubernetes_validate.validate(resource, version, strict=True)


def test_strict_validation_rejects_an_unknown_field() -> None:
    broken = copy.deepcopy(statefulset())
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRoot"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_built_kustomizations_validate_strictly(version: str) -> None:
    for directory in kustomization_dirs():
        for resource in kustomize_build(directory):
            if resource["kind"] not in OPERATOR_KINDS:
                kubernetes_validate.validate(resource, version, strict=True)


# --- kustomize ----------------------------------------------------------------------------


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: p.name)
def test_kustomization_lists_every_file_and_every_listed_file_exists(directory: Path) -> None:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    for entry in listed:
        path = directory / entry
        assert path.exists(), f"{directory.name}/kustomization.yaml lists missing {entry}"
        if path.is_dir():
            assert (path / "kustomization.yaml").exists(), f"{entry} is not a kustomization"
    files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    # The example Secret holds placeholders: applied with the rest, it would overwrite the
    # real credentials, so it is left out on purpose.
    expected = {f for f in files if not f.endswith(".example.yaml")}
    assert {e for e in listed if (directory / e).is_file()} == expected


@pytest.mark.parametrize("count", [2, 5])
def test_shard_count_follows_the_replica_count(tmp_path: Path, count: int) -> None:
    copy_dir = tmp_path / "base"
    copy_dir.mkdir()
    for path in BASE.glob("*.yaml"):
        (copy_dir / path.name).write_text(path.read_text())
    kustomization = copy_dir / "kustomization.yaml"
    text = kustomization.read_text()
    assert "    count: 2\n" in text
    kustomization.write_text(text.replace("    count: 2\n", f"    count: {count}\n"))
    assert shard_count_and_replicas(kustomize_build(copy_dir)) == (str(count), count)


@pytest.mark.parametrize("text", readme_overlays())
def test_the_readme_overlay_keeps_shard_count_equal_to_replicas(tmp_path: Path, text: str) -> None:
    built = kustomize_build(readme_overlay(text, tmp_path))
    assert shard_count_and_replicas(built) == ("4", 4)
    assert container_of(built)["image"] == "registry.example.com/podero-exporter:0.1.0"


def bare_overlay(directory: Path) -> Path:
    """An overlay that sets replicas but forgets the replacement."""
    directory.mkdir(exist_ok=True)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(BASE, directory)],
                "replicas": [{"name": NAME, "count": 4}],
            }
        )
    )
    return directory


def test_an_overlay_without_the_replacement_would_break_the_shard_count(tmp_path: Path) -> None:
    # Why the README's overlay repeats the replacement: kustomize runs the base's
    # replacement before the overlay's replicas (kubectl's test below shows it for real).
    assert shard_count_and_replicas(kustomize_build(bare_overlay(tmp_path))) == ("2", 4)


def container_of(resources: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = by_key(resources)[("StatefulSet", NAME)]["spec"]["template"]["spec"]["containers"]
    return dict(c)


@pytest.mark.parametrize("directory", kustomization_dirs(), ids=lambda p: p.name)
def test_kubectl_kustomize_builds_what_the_emulation_builds(directory: Path) -> None:
    real = kubectl_kustomize(directory)
    assert by_key(real) == by_key(kustomize_build(directory))
    for resource in real:
        if resource["kind"] not in OPERATOR_KINDS:
            kubernetes_validate.validate(resource, KUBERNETES_VERSIONS[-1], strict=True)


def test_kubectl_kustomize_builds_the_overlays_as_the_emulation_does(tmp_path: Path) -> None:
    for i, text in enumerate(readme_overlays()):
        readme = readme_overlay(text, tmp_path / f"readme{i}")
        real = kubectl_kustomize(readme)
        assert shard_count_and_replicas(real) == ("4", 4)
        assert by_key(real) == by_key(kustomize_build(readme))
    bare = kubectl_kustomize(bare_overlay(tmp_path / "bare"))
    assert shard_count_and_replicas(bare) == ("2", 4)


# --- the workload -------------------------------------------------------------------------


def test_pods_take_their_shard_from_the_ordinal_and_the_replica_count() -> None:
    index = env("PODERO_SHARD_INDEX")["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.labels['apps.kubernetes.io/pod-index']"
    # Applied without kustomize, the file alone must be consistent too.
    (raw,) = load_all(BASE / "statefulset.yaml")
    assert shard_count_and_replicas([raw]) == (
        str(raw["spec"]["replicas"]),
        raw["spec"]["replicas"],
    )


def test_security_context() -> None:
    pod = statefulset()["spec"]["template"]["spec"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = int(re.search(r"--uid (\d+)", dockerfile).group(1))  # type: ignore[union-attr]
    assert re.search(rf"^USER {uid}$", dockerfile, flags=re.MULTILINE)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "add" not in context["capabilities"]


def test_args_keep_the_image_entrypoint() -> None:
    c = container()
    assert "command" not in c, "the image's ENTRYPOINT (podero-exporter) must stay"
    assert 'ENTRYPOINT ["podero-exporter"]' in (ROOT / "Dockerfile").read_text()
    assert c["args"] == [
        "--config.file=/etc/podero-exporter/config.yaml",
        "--web.listen-address=:10042",
    ]
    name, _, tag = c["image"].partition(":")
    # The base deploys the newest release (the version is a git tag; a build between tags is
    # a dev version no image is published under).
    newest = re.search(r"^## (\S+) / ", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert newest is not None
    assert (name, tag) == (NAME, newest.group(1))


def test_probes_hit_the_health_endpoints_on_the_metrics_port() -> None:
    c = container()
    assert c["ports"] == [{"name": "metrics", "containerPort": 10042, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "metrics"}


def test_the_readme_tls_overlay_probes_what_the_kubelet_can_reach(tmp_path: Path) -> None:
    """Basic auth guards every path and a required client certificate every connection, so
    the kubelet's plain HTTP probes would fail: the overlay probes the port instead, and
    mounts the web config it names."""
    (built,) = [
        r for r in kubectl_kustomize(readme_tls_overlay(tmp_path)) if r["kind"] == "StatefulSet"
    ]
    kubernetes_validate.validate(built, KUBERNETES_VERSIONS[-1], strict=True)
    pod = built["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert "httpGet" not in c[probe]
        assert c[probe]["tcpSocket"] == {"port": "metrics"}
        assert c[probe]["periodSeconds"] == container()[probe]["periodSeconds"]  # merged
    (flag,) = [a for a in c["args"] if a.startswith("--web.config.file=")]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "web-config")
    assert flag == f"--web.config.file={mount['mountPath']}/web-config.yml"
    assert mount["readOnly"] is True
    # Its own directory: the config's mount (/etc/podero-exporter) stays as it was.
    assert {m["mountPath"] for m in container()["volumeMounts"]} < {
        m["mountPath"] for m in c["volumeMounts"]
    }
    volume = next(v for v in pod["volumes"] if v["name"] == "web-config")
    assert volume["secret"]["defaultMode"] == 0o440  # the group fsGroup gives the pod
    assert c["args"][:2] == container()["args"]
    # The README web config it mounts turns on what makes plain probes fail.
    readme = (ROOT / "README.md").read_text()
    web = yaml.safe_load(
        readme[
            readme.index("# web-config.yml") : readme.index("```", readme.index("# web-config.yml"))
        ]
    )
    assert web["basic_auth_users"]
    assert web["tls_server_config"]["client_auth_type"] == "RequireAndVerifyClientCert"


def quantity_bytes(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", value)
    assert match, value
    return float(match.group(1)) * units.get(match.group(2), 1)


def test_resources_cover_the_benchmarked_footprint() -> None:
    benchmarks = (ROOT / "benchmarks/README.md").read_text()
    found = re.search(r"resident memory: ([\d.]+) MB at the end", benchmarks)
    assert found, "bench_footprint's result is missing from benchmarks/README.md"
    footprint = float(found.group(1)) * 1e6
    resources = container()["resources"]
    request = quantity_bytes(resources["requests"]["memory"])
    limit = quantity_bytes(resources["limits"]["memory"])
    assert footprint * 1.1 <= request <= limit
    assert limit >= footprint * 1.5, "leave room for concurrent scrapes"
    assert resources["requests"]["cpu"]
    assert "cpu" not in resources["limits"]


def test_pod_disruption_budget_allows_one_shard_down() -> None:
    pdb = base()[("PodDisruptionBudget", NAME)]["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"] == statefulset()["spec"]["selector"]


def test_headless_service_selects_the_pods() -> None:
    service = base()[("Service", NAME)]
    labels = statefulset()["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset()["spec"]["serviceName"] == NAME
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 10042, "targetPort": "metrics", "protocol": "TCP"}
    ]


def example_secret() -> dict[str, Any]:
    (secret,) = load_all(BASE / "secret.example.yaml")
    return secret


def test_credentials_come_from_the_secret_by_reference() -> None:
    secret = example_secret()
    assert all("EXAMPLE" in value for value in secret["stringData"].values())
    client_id = env("PODERO_CLIENT_ID")
    assert "value" not in client_id
    ref = client_id["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    (volume,) = [v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["defaultMode"] == 0o440
    assert {i["key"] for i in volume["secret"]["items"]} <= set(secret["stringData"])
    mount = next(m for m in container()["volumeMounts"] if m["name"] == volume["name"])
    assert mount["readOnly"] is True
    assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
    # Nothing but the shard count is a literal value in the environment.
    assert [e["name"] for e in container()["env"] if "value" in e] == ["PODERO_SHARD_COUNT"]


# --- the exporter's config ----------------------------------------------------------------


def configmap_config() -> str:
    configmap = base()[("ConfigMap", f"{NAME}-config")]
    volume = next(
        v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if "configMap" in v
    )
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    mount = next(m for m in container()["volumeMounts"] if m["name"] == volume["name"])
    assert f"--config.file={mount['mountPath']}/config.yaml" in container()["args"]
    return str(configmap["data"]["config.yaml"])


def test_configmap_config_passes_the_exporters_validation(tmp_path: Path) -> None:
    text = configmap_config()
    secret = example_secret()
    secret_path = yaml.safe_load(text)["podero"]["auth"]["client_secret_file"]
    volume = next(v for v in statefulset()["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    mount = next(m for m in container()["volumeMounts"] if m["name"] == volume["name"])
    (item,) = volume["secret"]["items"]
    assert secret_path == f"{mount['mountPath']}/{item['path']}"
    # Every ${VAR} in the config is set in the container's environment.
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= {e["name"] for e in container()["env"]}
    environment = {"PODERO_CLIENT_ID": secret["stringData"]["client-id"]}

    # Validation reads the secret file (not only checks that the path is set), so the file
    # must exist: here it does not, and the error names the key.
    if not Path(secret_path).exists():
        with pytest.raises(ConfigError, match=r"^podero\.auth\.client_secret_file: cannot read"):
            parse_config(text, environment)

    local_secret = tmp_path / item["path"]
    local_secret.write_text(secret["stringData"][item["key"]])
    config = parse_config(text.replace(secret_path, str(local_secret)), environment)
    assert config.podero.auth.client_id == environment["PODERO_CLIENT_ID"]
    assert config.podero.auth.secret().get_secret_value() == secret["stringData"]["client-secret"]
    assert config.discovery is not None and config.discovery.org_ids
    assert config.shard.count == 1, "the shard comes from the environment, not the config"


# --- Prometheus Operator --------------------------------------------------------------------


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_operator", ROOT / "deploy/generate_operator.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_operator_files_are_what_the_generator_writes() -> None:
    rendered = generator().render()
    assert {p.name for p in rendered} == {"servicemonitor.yaml", "prometheusrule.yaml"}
    for path, text in rendered.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is out of date: run python deploy/generate_operator.py"
        )


def test_generator_check_command_passes() -> None:
    result = subprocess.run(
        [sys.executable, "deploy/generate_operator.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def operator_resource(kind: str) -> dict[str, Any]:
    return by_key(kustomize_build(OPERATOR))[(kind, NAME)]


def test_prometheus_rule_holds_the_rules_file() -> None:
    rules = yaml.safe_load(RULES.read_text())
    assert operator_resource("PrometheusRule")["spec"] == {"groups": rules["groups"]}


def test_prometheus_rule_spec_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    spec = operator_resource("PrometheusRule")["spec"]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(g["rules"]) for g in spec["groups"])
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_service_monitor_scrapes_the_service_under_the_rules_job_name() -> None:
    monitor = operator_resource("ServiceMonitor")["spec"]
    service = base()[("Service", NAME)]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    (relabel,) = endpoint["relabelings"]
    assert relabel["targetLabel"] == "job"
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    jobs = {j for e in exprs for j in re.findall(r'\bjob\s*=\s*"([^"]*)"', e)}
    assert jobs <= {relabel["replacement"]}


def test_the_job_name_comes_from_the_rules() -> None:
    gen = generator()
    group = {"name": "g", "rules": [{"alert": "A", "expr": 'up{job="elsewhere"} == 0'}]}
    assert gen.job_name([group]) == "elsewhere"
    assert gen.job_name([{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]) == "podero"
    two = {"name": "h", "rules": [{"alert": "B", "expr": 'up{job="other"} == 0'}]}
    with pytest.raises(ValueError, match="several jobs"):
        gen.job_name([group, two])
