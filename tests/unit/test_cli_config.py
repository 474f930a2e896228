"""Bad configuration and command lines: one clear line naming the key, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emitter.cli import main
from emitter.errors import ConfigError
from emitter.settings import load_settings

CASES = [
    # (name, argv, env, ini text, text the line must contain)
    ("telegram without api_id", ["run", "--source", "telegram", "--group", "@chan"], {}, None, "telegram.api_id"),
    (
        "telegram without groups",
        ["run"],
        {"TELEGRAM_API_ID": "1", "TELEGRAM_API_HASH": "h"},
        None,
        "telegram.groups is empty",
    ),
    ("bad bootstrap address", ["run", "--bootstrap-servers", "nohost"], {}, None, "kafka.bootstrap_servers"),
    ("bootstrap port out of range", ["run", "--bootstrap-servers", "127.0.0.1:99999"], {}, None, "99999"),
    ("non-numeric group id", ["run", "--group", "12ab"], {}, None, "'12ab' is not a group"),
    ("unknown INI key", ["run"], {}, "[kafka]\nbootstrap = x:1\n", "unknown setting kafka.bootstrap"),
    ("unknown INI section", ["run"], {}, "[kafak]\ntopic = x\n", "unknown section [kafak]"),
    ("INI without sections", ["run"], {}, "api_id = 1\n", "is not valid INI"),
    ("negative batch size (env)", ["run"], {"EMITTER_EMITTER__BATCH_SIZE": "-5"}, None, "emitter.batch_size = '-5'"),
    ("negative batch size (flag)", ["run", "--batch-size", "-3"], {}, None, "--batch-size"),
    (
        "unknown environment key",
        ["run"],
        {"EMITTER_KAFKA__BOOTSTRAPSERVERS": "x"},
        None,
        "EMITTER_KAFKA__BOOTSTRAPSERVERS",
    ),
    ("bad log level", ["run"], {"EMITTER_EMITTER__LOG_LEVEL": "loud"}, None, "emitter.log_level = 'LOUD'"),
    ("api_id not a number", ["run"], {"TELEGRAM_API_ID": "abc"}, None, "telegram.api_id = 'abc'"),
    ("SASL without mechanism", ["run"], {}, "[kafka]\nsecurity_protocol = SASL_SSL\n", "needs sasl_mechanism"),
    ("export without path", ["run", "--source", "export"], {}, None, "emitter.export_path is required"),
    ("sampling ratio above 1", ["run"], {"EMITTER_TELEMETRY__SAMPLING_RATIO": "2"}, None, "telemetry.sampling_ratio"),
    ("zero partitions", ["run"], {}, "[kafka]\npartitions = 0\n", "kafka.partitions = '0'"),
    ("unknown source", ["run", "--source", "twitter"], {}, None, "emitter.source = 'twitter'"),
    ("kafka sink without brokers", ["run", "--sink", "kafka"], {}, None, "kafka.bootstrap_servers is required"),
    ("unknown command", ["frobnicate"], {}, None, "invalid choice: 'frobnicate'"),
    ("negative drain timeout", ["run"], {"EMITTER_EMITTER__DRAIN_TIMEOUT": "-1"}, None, "emitter.drain_timeout"),
    ("unknown SASL mechanism", ["run"], {}, "[kafka]\nsasl_mechanism = MD5\n", "kafka.sasl_mechanism = 'MD5'"),
    ("unknown compression", ["run"], {"EMITTER_KAFKA__COMPRESSION": "brotli"}, None, "kafka.compression"),
    ("instance with spaces", ["run", "--instance", "my emitter"], {}, None, "emitter.instance = 'my emitter'"),
    (
        "registry URL without scheme",
        ["run"],
        {},
        "[kafka]\nschema_registry_url = registry:8081\n",
        "schema_registry_url",
    ),
    (
        "bad language code",
        ["run"],
        {"EMITTER_TELEGRAM__LANG_CODE": "english!"},
        None,
        "telegram.lang_code = 'english!'",
    ),
    ("empty device model", ["run"], {}, "[telegram]\ndevice_model =\n", "telegram.device_model"),
    ("tiny max record bytes", ["run"], {"EMITTER_KAFKA__MAX_RECORD_BYTES": "10"}, None, "kafka.max_record_bytes"),
    ("bad backfill date", ["backfill", "--start-date", "yesterday"], {}, None, "'yesterday' is not a date"),
    ("zero backfill limit", ["backfill", "--limit", "0"], {}, None, "--limit"),
    ("unknown oversize policy", ["run"], {"EMITTER_KAFKA__OVERSIZE_POLICY": "drop"}, None, "kafka.oversize_policy"),
    ("missing config file", ["run", "--config", "/nonexistent/emitter.ini"], {}, None, "/nonexistent/emitter.ini"),
    (
        "auto source into Kafka without Telegram keys",
        ["run", "--bootstrap-servers", "127.0.0.1:9092"],
        {},
        None,
        "missing telegram.api_id, telegram.api_hash, a session",
    ),
    (
        "auto source into Kafka, api_hash only (backfill)",
        ["backfill"],
        {"EMITTER_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092", "TELEGRAM_API_HASH": "h"},
        None,
        "missing telegram.api_id, a session",
    ),
    ("media enabled without bucket", ["run"], {}, "[media]\nenabled = true\n", "media: bucket is required"),
    ("unknown media type", ["run"], {"EMITTER_MEDIA__TYPES": "photo,gif"}, None, "'gif' is not a media type"),
    ("media part size below S3's 5 MiB", ["run"], {}, "[media]\npart_size = 1000\n", "media.part_size = '1000'"),
    ("media prefix without slash", ["run"], {}, "[media]\nprefix = emitter\n", "media.prefix = 'emitter'"),
    ("bad bucket name", ["run"], {"EMITTER_MEDIA__BUCKET": "My_Bucket"}, None, "media.bucket = 'My_Bucket'"),
    (
        "media access key without secret",
        ["run"],
        {"EMITTER_MEDIA__ACCESS_KEY_ID": "AKIA1"},
        None,
        "media: access_key_id and secret_access_key go together",
    ),
    (
        "media group override not key=value",
        ["run"],
        {},
        "[media]\ngroups = -1001: photo\n",
        "'photo' in the override of -1001 is not key=value",
    ),
    (
        "media group override of an unknown type",
        ["run"],
        {},
        "[media]\ngroups = -1001: types=photo|gif\n",
        "'gif' is not a media type",
    ),
    ("media group id not a number", ["run"], {}, "[media]\ngroups = @chan: types=photo\n", "media.groups"),
    (
        "proxy of an unknown scheme (the password masked)",
        ["run"],
        {"EMITTER_TELEGRAM__PROXY": "ftp://u:proxy-pw@host:1080"},
        None,
        "telegram.proxy: 'ftp://u:***@host:1080' has no known proxy scheme",
    ),
    (
        "proxy without a port",
        ["run"],
        {},
        "[telegram]\nproxy = socks5://u:proxy-pw@host\n",
        "telegram.proxy: 'socks5://u:***@host' needs a host and a port",
    ),
    ("proxy port out of range", ["run"], {"EMITTER_TELEGRAM__PROXY": "http://host:70000"}, None, "1 to 65535"),
    (
        "MTProxy secret not hex",
        ["run"],
        {"EMITTER_TELEGRAM__PROXY": "mtproxy://nothex@host:443"},
        None,
        "'mtproxy://***@host:443': an MTProxy secret is 32 hex digits",
    ),
    (
        "require_proxy without a proxy",
        ["run"],
        {"EMITTER_TELEGRAM__REQUIRE_PROXY": "true"},
        None,
        "telegram.require_proxy = true but telegram.proxy is not set",
    ),
    (
        "auto source into Kafka without Telegram keys (check)",
        ["check"],
        {},
        "[kafka]\nbootstrap_servers = 127.0.0.1:9092\n",
        "emitter.source = demo",
    ),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in list(__import__("os").environ):
        if var.startswith(("EMITTER_", "TELEGRAM_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(("argv", "env", "ini", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_is_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    ini: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Each bad input exits 2 with one line on stderr that names the bad key or value."""
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if ini is not None:
        (tmp_path / "config.ini").write_text(ini)
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("emitter: error: ")
    assert expected in err
    assert "Traceback" not in err


def test_at_least_twenty_five_cases() -> None:
    """The table covers at least twenty-five distinct mistakes."""
    assert len({c[0] for c in CASES}) >= 25


def test_secrets_are_not_echoed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value next to a secret never prints the secret; repr of settings hides it."""
    monkeypatch.setenv("TELEGRAM_API_HASH", "hash-that-must-not-leak")
    monkeypatch.setenv("EMITTER_KAFKA__SASL_PASSWORD", "sasl-secret-value")
    monkeypatch.setenv("EMITTER_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("EMITTER_MEDIA__SECRET_ACCESS_KEY", "s3-secret-value")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "hash-that-must-not-leak" not in err
    assert "sasl-secret-value" not in err
    assert "s3-secret-value" not in err
    monkeypatch.setenv("EMITTER_TELEGRAM__PROXY", "socks5://user:proxy-secret-pw@127.0.0.1:1080")
    monkeypatch.setenv("EMITTER_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("EMITTER_MEDIA__ACCESS_KEY_ID", "AKIA1")
    monkeypatch.setenv("EMITTER_KAFKA__SASL_USERNAME", "u")
    settings = load_settings()
    assert "hash-that-must-not-leak" not in repr(settings) + str(settings)
    assert "sasl-secret-value" not in repr(settings) + str(settings)
    proxy = settings.telegram.proxy_route
    assert proxy is not None and proxy.password == "proxy-secret-pw"  # noqa: S105 - the test's own value
    assert "proxy-secret-pw" not in repr(settings) + str(settings) + repr(proxy) + proxy.describe()
    assert "s3-secret-value" not in repr(settings) + str(settings)


def test_precedence_defaults_ini_env_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Flags beat environment, environment beats the INI file, the INI file beats defaults."""
    ini = tmp_path / "c.ini"
    ini.write_text("[kafka]\ntopic = from-ini\npartitions = 5\n[emitter]\nbatch_size = 7\ninstance = ini\n")
    monkeypatch.setenv("EMITTER_KAFKA__TOPIC", "from-env")
    monkeypatch.setenv("EMITTER_EMITTER__INSTANCE", "env")
    s = load_settings(ini, {"emitter": {"instance": "flag"}})
    assert (s.kafka.partitions, s.kafka.topic, s.emitter.instance, s.emitter.batch_size) == (5, "from-env", "flag", 7)
    assert s.kafka.replication_factor == 1


def test_tgdata_config_ini_loads_unchanged(tmp_path: Path) -> None:
    """The [telegram] api_id / api_hash / session_file / phone layout of tgdata works as is."""
    ini = tmp_path / "config.ini"
    ini.write_text(
        "[telegram]\napi_id = 12345\napi_hash = 0123456789abcdef\nsession_file = tg.session\nphone = +15550000\n"
    )
    s = load_settings(ini, {"telegram": {"groups": ["@python"]}})
    assert s.telegram.api_id == 12345
    assert s.telegram.api_hash is not None and s.telegram.api_hash.get_secret_value() == "0123456789abcdef"
    assert s.source_kind == "telegram"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "demo"),
        ({"kafka": {"bootstrap_servers": "127.0.0.1:9092"}, "emitter": {"export_path": "result.json"}}, "export"),
        ({"kafka": {"bootstrap_servers": "127.0.0.1:9092"}, "emitter": {"source": "demo"}}, "demo"),
        ({"kafka": {"bootstrap_servers": "127.0.0.1:9092"}, "telegram": {"api_id": 1, "api_hash": "h"}}, "telegram"),
    ],
    ids=["no kafka: demo", "kafka and an export", "kafka and demo on purpose", "kafka and an account"],
)
def test_auto_source_picks_demo_only_without_kafka(overrides: dict[str, dict[str, object]], expected: str) -> None:
    """auto resolves to telegram, export, or demo; demo only when no Kafka sink is configured or when asked."""
    assert load_settings(None, overrides).source_kind == expected


def test_commands_without_a_source_load_with_kafka_alone() -> None:
    """Kafka and no Telegram keys still loads (tail, login need no source); only resolving the source fails."""
    settings = load_settings(None, {"kafka": {"bootstrap_servers": "127.0.0.1:9092"}})
    assert settings.sink_kind == "kafka"
    with pytest.raises(ConfigError, match="never demo data"):
        _ = settings.source_kind


def test_console_script_prints_no_traceback() -> None:
    """The installed entry point turns a user mistake into one line and exit 2 (a real process)."""
    proc = subprocess.run(
        [sys.executable, "-m", "emitter.cli", "run", "--bootstrap-servers", "not-an-address"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "kafka.bootstrap_servers" in proc.stderr
