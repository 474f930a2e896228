"""Rendering the Helm chart with the cached helm (dev/helm) and reading what it produced."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "telegram-emitter"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
RELEASE = "rel"
NAMESPACE = "telegram"
FULLNAME = f"{RELEASE}-telegram-emitter"
MONITORING_API = "monitoring.coreos.com/v1"
CONTAINER_TMP = "/tmp"  # noqa: S108 - the containers' writable /tmp mount, not a file this process creates

Manifest = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs dev/helm (which builds helm on first use) and returns the finished process."""
    return subprocess.run([str(ROOT / "dev" / "helm"), *args], capture_output=True, text=True, check=False)


def template_args(
    values: Sequence[Path | Mapping[str, Any]] = (), api_versions: Sequence[str] = (), tmp: Path | None = None
) -> list[str]:
    """The `helm template` command line; mappings are written as JSON values files into `tmp`."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for i, value in enumerate(values):
        if isinstance(value, Path):
            args += ["-f", str(value)]
        else:
            if tmp is None:
                raise ValueError("values given as a mapping need a directory to be written to")
            path = tmp / f"values-{i}.json"
            path.write_text(json.dumps(value))
            args += ["-f", str(path)]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def render(
    values: Sequence[Path | Mapping[str, Any]] = (), api_versions: Sequence[str] = (), tmp: Path | None = None
) -> list[Manifest]:
    """The manifests `helm template` renders; fails the test with helm's message if rendering fails."""
    done = helm(*template_args(values, api_versions, tmp))
    if done.returncode != 0:
        raise AssertionError(f"helm template failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def load_values(path: Path) -> dict[str, Any]:
    """A values file as a dict."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def of_kind(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    """The manifests of one kind, in rendering order."""
    return [m for m in manifests if m["kind"] == kind]


def by_name(manifests: Sequence[Manifest], kind: str) -> dict[str, Manifest]:
    """The manifests of one kind by metadata.name."""
    return {m["metadata"]["name"]: m for m in of_kind(manifests, kind)}


def containers(pod_spec: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every container of a pod spec, init containers included."""
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec.get("containers", [])


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's environment by variable name."""
    return {e["name"]: e for e in container.get("env", [])}


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    """A Secret's values, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
