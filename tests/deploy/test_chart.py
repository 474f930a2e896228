"""The Helm chart as rendered: one fenced pod per identity, restricted, secrets only in Secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from emitter.settings import Settings, load_settings
from tests.deploy.chart import (
    CHART,
    CONTAINER_TMP,
    FULL_VALUES,
    FULLNAME,
    MONITORING_API,
    NAMESPACE,
    Manifest,
    by_name,
    containers,
    env_of,
    helm,
    load_values,
    of_kind,
    render,
    secret_data,
    template_args,
)

SECRET_ENV = {
    "TELEGRAM_API_ID": "apiId",
    "TELEGRAM_API_HASH": "apiHash",
    "TELEGRAM_SESSION": "session",
    "EMITTER_KAFKA__SASL_PASSWORD": "kafkaSaslPassword",
    "EMITTER_KAFKA__SCHEMA_REGISTRY_PASSWORD": "schemaRegistryPassword",
    "EMITTER_TELEGRAM__PROXY": "proxy",
    "EMITTER_MEDIA__SECRET_ACCESS_KEY": "mediaSecretAccessKey",
}
# Stand-ins for the keys of a Secret the chart does not render (existingSecret).
EXISTING_SECRET = {
    "api-id": "1",
    "api-hash": "0" * 32,
    "session": "placeholder",
    "kafka-sasl-password": "placeholder",
    "schema-registry-password": "placeholder",
    "telegram-proxy": "socks5://emitter:placeholder@socks.proxy:1080",
    "media-secret-access-key": "placeholder",
}
# Settings the chart sets itself, outside `config`.
MANAGED = {
    ("telegram", "groups"),  # identities[].groups
    ("emitter", "instance"),  # identities[].instance, as EMITTER_EMITTER__INSTANCE
    ("emitter", "drain_timeout"),  # drainTimeoutSeconds, tied to terminationGracePeriodSeconds
    ("emitter", "data_dir"),  # the /data volume
    ("emitter", "log_format"),  # logFormat: the image sets it in the environment, which wins over the INI file
    ("telemetry", "http_port"),  # 9464, the port the probes, the Service and the ServiceMonitor use
    ("telemetry", "http_host"),  # 0.0.0.0, so the kubelet's probes reach it on the pod's address
}
SECRET_SETTINGS = {
    ("telegram", "api_id"),
    ("telegram", "api_hash"),
    ("telegram", "session"),
    ("kafka", "sasl_password"),
    ("kafka", "schema_registry_password"),
    ("telegram", "proxy"),
    ("media", "secret_access_key"),
}
LOGIN_ONLY = {("telegram", "session_file"), ("telegram", "phone")}  # `emitter login`, not a running pod
FREE_FORM_MAPS = {"podAnnotations", "podLabels", "nodeSelector", "annotations", "labels", "matchLabels"}


def identities(name: str) -> list[dict[str, Any]]:
    """The identities of a value set ("default" or "full")."""
    values = load_values(CHART / "values.yaml") if name == "default" else load_values(FULL_VALUES)
    result: list[dict[str, Any]] = values["identities"]
    return result


def container_of(statefulset: Manifest) -> dict[str, Any]:
    """The emitter container of a StatefulSet."""
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "emitter"
    return container


def identity_env(manifests: list[Manifest], statefulset: Manifest, config_path: Path) -> dict[str, str]:
    """The environment the emitter would see, secret references resolved from the rendered Secrets."""
    secrets = {name: secret_data(s) for name, s in by_name(manifests, "Secret").items()}
    env: dict[str, str] = {}
    for name, entry in env_of(container_of(statefulset)).items():
        if "value" in entry:
            env[name] = entry["value"]
        elif ref := entry.get("valueFrom", {}).get("secretKeyRef"):
            data = secrets.get(ref["name"], EXISTING_SECRET)
            env[name] = data[ref["key"]]
    env["EMITTER_CONFIG"] = str(config_path)
    return env


@pytest.mark.parametrize("value_set", ["default", "full"])
def test_one_statefulset_with_one_replica_per_identity(value_set: str, request: pytest.FixtureRequest) -> None:
    """Each identity is a StatefulSet of exactly one pod, named <release>-<chart>-<identity>; nothing else runs pods."""
    manifests: list[Manifest] = request.getfixturevalue(f"{value_set}_manifests")
    names = [i["name"] for i in identities(value_set)]
    statefulsets = by_name(manifests, "StatefulSet")
    assert sorted(statefulsets) == sorted(f"{FULLNAME}-{n}" for n in names)
    assert all(s["spec"]["replicas"] == 1 for s in statefulsets.values())
    workloads = {"Deployment", "ReplicaSet", "DaemonSet", "Job", "CronJob", "Pod"}
    assert not [m for m in manifests if m["kind"] in workloads]


def test_restricted_security_context_on_every_pod_and_container(manifests: list[Manifest]) -> None:
    """Every pod and container runs as the restricted Pod Security Standard asks, as UID 10001."""
    for statefulset in of_kind(manifests, "StatefulSet"):
        pod = statefulset["spec"]["template"]["spec"]
        pod_context = pod["securityContext"]
        assert pod_context["runAsNonRoot"] is True
        assert pod_context["runAsUser"] == 10001
        assert pod_context["fsGroup"] == 10001
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert not any(pod.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
        for container in containers(pod):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context.get("privileged", False) is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_service_links_are_off(manifests: list[Manifest]) -> None:
    """No <SERVICE>_PORT variables: for a release named emitter… they would be unknown EMITTER_* settings."""
    for statefulset in of_kind(manifests, "StatefulSet"):
        assert statefulset["spec"]["template"]["spec"]["enableServiceLinks"] is False


def test_secret_values_appear_only_in_secrets(full_manifests: list[Manifest]) -> None:
    """API hashes, sessions and Kafka passwords are in Secrets, and everything else only refers to them."""
    secret_values = {
        value
        for identity in identities("full")
        for key, value in identity.get("secret", {}).items()
        if key != "apiId"  # a short number, which also occurs inside group ids
    }
    assert secret_values
    for manifest in full_manifests:
        if manifest["kind"] != "Secret":
            text = json.dumps(manifest)
            assert not [v for v in secret_values if v in text], manifest["metadata"]["name"]
    in_secrets = {v for s in of_kind(full_manifests, "Secret") for v in secret_data(s).values()}
    assert secret_values <= in_secrets
    for statefulset in of_kind(full_manifests, "StatefulSet"):
        for name, entry in env_of(container_of(statefulset)).items():
            if name in SECRET_ENV:
                assert "value" not in entry, name
                assert entry["valueFrom"]["secretKeyRef"]["key"]
    for configmap in of_kind(full_manifests, "ConfigMap"):
        ini = configmap["data"]["config.ini"]
        assert not [key for _, key in SECRET_SETTINGS if f"\n{key} =" in ini]


def test_existing_secret_is_referenced_not_rendered(full_manifests: list[Manifest]) -> None:
    """An identity with existingSecret gets no Secret of the chart; its pod reads the named one."""
    (markets,) = [i for i in identities("full") if i.get("existingSecret")]
    assert f"{FULLNAME}-{markets['name']}" not in by_name(full_manifests, "Secret")
    statefulset = by_name(full_manifests, "StatefulSet")[f"{FULLNAME}-{markets['name']}"]
    env = env_of(container_of(statefulset))
    refs = {name: env[name]["valueFrom"]["secretKeyRef"] for name in SECRET_ENV}
    assert {ref["name"] for ref in refs.values()} == {markets["existingSecret"]}
    assert refs["EMITTER_KAFKA__SASL_PASSWORD"].get("optional") is True
    assert refs["EMITTER_KAFKA__SCHEMA_REGISTRY_PASSWORD"].get("optional") is True
    assert refs["EMITTER_TELEGRAM__PROXY"].get("optional") is True
    assert not any(refs[name].get("optional") for name in ("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_SESSION"))


def test_grace_period_covers_the_drain_timeout(manifests: list[Manifest]) -> None:
    """Kubernetes waits longer than the emitter drains, so a stop always commits what was accepted."""
    for statefulset in of_kind(manifests, "StatefulSet"):
        drain = float(env_of(container_of(statefulset))["EMITTER_EMITTER__DRAIN_TIMEOUT"]["value"])
        grace = statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= drain + 5, statefulset["metadata"]["name"]


def test_drain_timeout_follows_the_values(full_manifests: list[Manifest]) -> None:
    """drainTimeoutSeconds (global or per identity) plus the margin is the grace period."""
    values = load_values(FULL_VALUES)
    for identity in values["identities"]:
        statefulset = by_name(full_manifests, "StatefulSet")[f"{FULLNAME}-{identity['name']}"]
        drain = identity.get("drainTimeoutSeconds", values["drainTimeoutSeconds"])
        assert env_of(container_of(statefulset))["EMITTER_EMITTER__DRAIN_TIMEOUT"]["value"] == str(drain)
        grace = statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace == drain + values["terminationGraceMarginSeconds"]


def test_each_identity_has_its_own_instance(manifests: list[Manifest]) -> None:
    """EMITTER_EMITTER__INSTANCE differs per pod, so transactional ids and cursor keys never collide."""
    instances = [
        env_of(container_of(s))["EMITTER_EMITTER__INSTANCE"]["value"] for s in of_kind(manifests, "StatefulSet")
    ]
    assert instances
    assert len(set(instances)) == len(instances)


@pytest.mark.parametrize(("enabled", "api"), [(True, True), (True, False), (False, True), (False, False)])
def test_service_monitor_only_when_enabled_and_the_api_exists(enabled: bool, api: bool, tmp_path: Path) -> None:
    """A ServiceMonitor is rendered only when asked for and the cluster serves monitoring.coreos.com/v1."""
    manifests = render([{"serviceMonitor": {"enabled": enabled}}], [MONITORING_API] if api else [], tmp_path)
    assert len(of_kind(manifests, "ServiceMonitor")) == (1 if enabled and api else 0)


def test_service_monitor_selects_every_metrics_service(full_manifests: list[Manifest]) -> None:
    """The ServiceMonitor's selector and port match each identity's Service."""
    (monitor,) = of_kind(full_manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == MONITORING_API
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = of_kind(full_manifests, "Service")
    assert len(services) == len(identities("full"))
    for service in services:
        assert selector.items() <= service["metadata"]["labels"].items()
        assert {p["name"] for p in service["spec"]["ports"]} >= {e["port"] for e in monitor["spec"]["endpoints"]}
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


@pytest.mark.parametrize("value_set", ["default", "full"])
def test_network_policy_admits_the_metrics_port_only_from_the_chosen_peers(
    value_set: str, request: pytest.FixtureRequest
) -> None:
    """One ingress rule: port http only, from networkPolicy.metricsFrom, or this namespace's pods when empty."""
    manifests: list[Manifest] = request.getfixturevalue(f"{value_set}_manifests")
    (policy,) = of_kind(manifests, "NetworkPolicy")
    chosen = load_values(FULL_VALUES)["networkPolicy"]["metricsFrom"] if value_set == "full" else []
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == (chosen or [{"podSelector": {}}])
    for statefulset in of_kind(manifests, "StatefulSet"):
        pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()


def test_service_per_identity_serves_metrics_on_9464(manifests: list[Manifest]) -> None:
    """Each identity has a ClusterIP Service on port 9464 (named http) that selects its pod only."""
    services = by_name(manifests, "Service")
    for name, statefulset in by_name(manifests, "StatefulSet").items():
        service = services[name]
        assert statefulset["spec"]["serviceName"] == name
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [{"name": "http", "port": 9464, "targetPort": "http", "protocol": "TCP"}]
        pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        others = [s for n, s in by_name(manifests, "StatefulSet").items() if n != name]
        assert not [
            o
            for o in others
            if service["spec"]["selector"].items() <= o["spec"]["template"]["metadata"]["labels"].items()
        ]


def test_probes_use_healthz_and_readyz_on_the_http_port(manifests: list[Manifest]) -> None:
    """Liveness and startup ask /healthz, readiness asks /readyz, on the container port named http (9464)."""
    for statefulset in of_kind(manifests, "StatefulSet"):
        container = container_of(statefulset)
        assert {"name": "http", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
        assert env_of(container)["EMITTER_TELEMETRY__HTTP_PORT"]["value"] == "9464"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_writable_paths_are_volumes(full_manifests: list[Manifest]) -> None:
    """An emptyDir at /tmp; at /data a PersistentVolumeClaim with persistence on, else an emptyDir; config read-only."""
    for identity in identities("full"):
        statefulset = by_name(full_manifests, "StatefulSet")[f"{FULLNAME}-{identity['name']}"]
        pod = statefulset["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container_of(statefulset)["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[CONTAINER_TMP]["name"]]
        assert mounts["/etc/telegram-emitter"]["readOnly"] is True
        assert volumes[mounts["/etc/telegram-emitter"]["name"]]["configMap"]["name"] == statefulset["metadata"]["name"]
        claims = {c["metadata"]["name"]: c for c in statefulset["spec"].get("volumeClaimTemplates", [])}
        if identity.get("persistence", {}).get("enabled"):
            assert mounts["/data"]["name"] in claims
            assert mounts["/data"]["name"] not in volumes
            spec = claims[mounts["/data"]["name"]]["spec"]
            assert spec["resources"]["requests"]["storage"] == identity["persistence"]["size"]
        else:
            assert not claims
            assert "emptyDir" in volumes[mounts["/data"]["name"]]


def test_resources_have_defaults_and_per_identity_overrides(full_manifests: list[Manifest]) -> None:
    """Every container has requests and a memory limit; an identity's resources replace the defaults."""
    defaults = load_values(CHART / "values.yaml")["resources"]
    for identity in identities("full"):
        statefulset = by_name(full_manifests, "StatefulSet")[f"{FULLNAME}-{identity['name']}"]
        resources = container_of(statefulset)["resources"]
        assert resources == identity.get("resources", defaults)
        assert resources["requests"]["cpu"]
        assert resources["requests"]["memory"]
        assert resources["limits"]["memory"]


@pytest.mark.parametrize("value_set", ["default", "full"])
def test_rendered_configuration_is_accepted_by_the_emitter(
    value_set: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_environment: None,
) -> None:
    """Each identity's config.ini and environment load as the emitter's settings, with the chart's fixed values."""
    manifests: list[Manifest] = request.getfixturevalue(f"{value_set}_manifests")
    configmaps = by_name(manifests, "ConfigMap")
    for identity in identities(value_set):
        name = f"{FULLNAME}-{identity['name']}"
        statefulset = by_name(manifests, "StatefulSet")[name]
        path = tmp_path / f"{identity['name']}.ini"
        path.write_text(configmaps[name]["data"]["config.ini"])
        with monkeypatch.context() as m:
            for key, value in identity_env(manifests, statefulset, path).items():
                m.setenv(key, value)
            settings = load_settings()
        assert settings.emitter.instance == (identity.get("instance") or identity["name"])
        assert settings.telegram.groups == identity.get("groups", [])
        for key, value in identity.get("config", {}).get("telegram", {}).items():  # a device identity, say
            assert getattr(settings.telegram, key) == value, f"telegram.{key} of identity {identity['name']}"
        assert settings.telemetry.http_port == 9464
        assert settings.telemetry.http_host == "0.0.0.0"  # noqa: S104 - the pod address; the default is loopback
        assert str(settings.emitter.data_dir) == "/data"
        assert settings.source_kind == (
            "telegram" if identity.get("existingSecret") or identity.get("secret", {}).get("apiId") else "demo"
        )


def test_config_checksum_rolls_the_pod_when_config_changes(tmp_path: Path) -> None:
    """A change of config.ini changes the pod template, so the StatefulSet restarts the pod."""
    before = of_kind(render(), "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    after_manifests = render([{"config": {"emitter": {"batch_size": 7}}}], tmp=tmp_path)
    after = of_kind(after_manifests, "StatefulSet")[0]["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/config"] != after["checksum/config"]


def test_whole_numbers_are_written_without_exponent(tmp_path: Path) -> None:
    """Large integers from values files reach config.ini as plain digits, lists joined with commas."""
    values = {
        "config": {
            "emitter": {"file_rotate_bytes": 134217728, "demo_rate": 0.5, "source": "demo"},
            "kafka": {"bootstrap_servers": ["a:1", "b:2"]},
        }
    }
    (configmap,) = of_kind(render([values], tmp=tmp_path), "ConfigMap")
    ini = configmap["data"]["config.ini"]
    assert "file_rotate_bytes = 134217728\n" in ini
    assert "demo_rate = 0.5\n" in ini
    assert "bootstrap_servers = a:1, b:2\n" in ini


def test_tmp_grows_by_the_media_spool_when_media_spool_into_it(tmp_path: Path) -> None:
    """The tmp emptyDir holds tmpSizeLimit plus media.max_bytes x media.download_concurrency per identity spooling media
    there (the emitter's defaults where unset); an identity with media off or a spool_dir elsewhere keeps it."""
    values = {
        "tmpSizeLimit": "64Mi",
        "config": {"media": {"enabled": True, "bucket": "media"}},
        "identities": [
            {"name": "defaults"},
            {"name": "big", "config": {"media": {"max_bytes": 2**30, "download_concurrency": 3}}},
            {"name": "elsewhere", "config": {"media": {"spool_dir": "/data/spool"}}},
            {"name": "off", "config": {"media": {"enabled": False}}},
        ],
    }
    manifests = by_name(render([values], tmp=tmp_path), "StatefulSet")

    def tmp_limit(name: str) -> str:
        pod = manifests[f"{FULLNAME}-{name}"]["spec"]["template"]["spec"]
        mount = next(
            m for m in container_of(manifests[f"{FULLNAME}-{name}"])["volumeMounts"] if m["mountPath"] == CONTAINER_TMP
        )
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        return str(volume["emptyDir"]["sizeLimit"])

    assert tmp_limit("defaults") == str(64 * 2**20 + 2 * 100 * 2**20)
    assert tmp_limit("big") == str(64 * 2**20 + 3 * 2**30)
    assert tmp_limit("elsewhere") == "64Mi"
    assert tmp_limit("off") == "64Mi"


def _identity(**fields: Any) -> dict[str, Any]:
    return {"identities": [{"name": "one", **fields}]}


REFUSED: list[tuple[str, Mapping[str, Any], str]] = [
    (
        "duplicate instance",
        {"identities": [{"name": "a", "instance": "x"}, {"name": "b", "instance": "x"}]},
        'instance "x" appears twice',
    ),
    ("duplicate name", {"identities": [{"name": "a"}, {"name": "a", "instance": "other"}]}, 'name "a" appears twice'),
    (
        "telegram source without session",
        _identity(groups=["@somechannel"], secret={"apiId": 1, "apiHash": "h"}),
        "needs secret.session",
    ),
    ("telegram source without groups", _identity(existingSecret="mine"), "the telegram source needs groups"),
    (
        "auto source into Kafka without an account",
        {"config": {"kafka": {"bootstrap_servers": ["k:1"]}}, **_identity()},
        "identities[one]: source auto with Kafka needs a Telegram account",
    ),
    ("name too long", {"fullnameOverride": "x" * 40, **_identity(name="sixteen-chars-xx")}, "longer than 52"),
    ("unknown identity key", _identity(group=["@somechannel"]), "additional properties 'group' not allowed"),
    (
        "unknown config key",
        {"config": {"kafka": {"bootstrap": "k:1"}}},
        "additional properties 'bootstrap' not allowed",
    ),
    ("secret in config", {"config": {"kafka": {"sasl_password": "p"}}}, "'sasl_password' not allowed"),
    ("no identities", {"identities": []}, "identities"),
    (
        "tmp size the chart cannot add media room to",
        {"tmpSizeLimit": "1.5Gi", "config": {"media": {"enabled": True, "bucket": "media"}}},
        'tmpSizeLimit "1.5Gi": with media spooled into /tmp, expected a whole number',
    ),
]


@pytest.mark.parametrize(("values", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_chart_refuses_bad_values_with_a_clear_message(values: Mapping[str, Any], message: str, tmp_path: Path) -> None:
    """Values that would run two pods on one identity, or cannot work, fail the render with a message."""
    done = helm(*template_args([values], tmp=tmp_path))
    assert done.returncode != 0
    assert message in done.stderr


def _settings_keys() -> set[tuple[str, str]]:
    keys = set()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert model is not None
        keys |= {(section, key) for key in model.model_fields}  # type: ignore[attr-defined]
    return keys


def test_chart_config_keys_are_the_emitters_settings() -> None:
    """values.schema.json offers exactly the emitter's settings that are neither secret nor set by the chart."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    sections = schema["properties"]["config"]["properties"]
    offered = {(section, key) for section, spec in sections.items() for key in spec["properties"]}
    settings = _settings_keys()
    assert offered <= settings, "the chart offers keys the emitter does not know"
    assert not offered & (SECRET_SETTINGS | MANAGED | LOGIN_ONLY)
    missing = settings - offered - SECRET_SETTINGS - MANAGED - LOGIN_ONLY
    assert not missing, f"new settings to add to the chart's values.schema.json (config): {sorted(missing)}"


def _objects(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            yield path, node
        for key, child in node.items():
            yield from _objects(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _objects(child, f"{path}/{i}")


def test_values_schema_closes_every_object() -> None:
    """Every object in values.schema.json forbids unknown keys, except label-like maps of strings."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    for path, node in _objects(schema, ""):
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
        else:
            assert path.rsplit("/", 1)[-1] in FREE_FORM_MAPS, path
            assert node.get("additionalProperties") == {"type": "string"}, path


def test_default_values_match_the_documented_defaults() -> None:
    """The defaults the README promises: 20 s drain + 10 s margin, 100m/256Mi requests, 512Mi limit, emptyDir."""
    values = load_values(CHART / "values.yaml")
    assert values["drainTimeoutSeconds"] == 20
    assert values["terminationGraceMarginSeconds"] == 10
    assert values["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert values["resources"]["limits"]["memory"] == "512Mi"
    assert values["persistence"]["enabled"] is False
    assert values["serviceMonitor"]["enabled"] is False
