"""The built image, run the way a cluster runs it: read-only root, its own non-root UID, the demo source against
a real broker. `dev/image smoke` calls this after building; it prints one line and exits non-zero on the first
thing that does not hold.

It checks, in order: the process runs as the image's UID and cannot write its root file system; /healthz
answers 200; /readyz answers 200 once the cursors are restored; `podman healthcheck run` (the Dockerfile's
HEALTHCHECK) passes; records arrive in Kafka; SIGTERM ends the container with exit code 0 within
`emitter.drain_timeout`, leaving each group's committed ids a gapless prefix that its cursor covers; and a
second container on the same topics restores those cursors, finishes every group (the demo source's limit)
and exits 0, each id in Kafka exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from typing import Final

from emitter.cursor import GroupCursor
from emitter.kafka_sink import KafkaSink
from emitter.settings import load_settings
from reliability.common import delete_topics, free_port, new_ids_by_group, read_committed

UID: Final = 10001
GROUPS: Final = 2
HISTORY: Final = 300
LIMIT: Final = 800
"""Messages per demo group: HISTORY backfilled, the rest live at RATE per second; then the emitter exits."""
RATE: Final = 20.0
DRAIN: Final = 10.0
"""emitter.drain_timeout in the container: SIGTERM must end it within this many seconds."""


class SmokeError(Exception):
    """A check that did not hold."""


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The private podman of dev/image (PODMAN), with its output captured."""
    command = [*shlex.split(os.environ.get("PODMAN", "podman")), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SmokeError(f"{shlex.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done


def wait_until(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Poll `predicate` until it holds; the seconds it took. Raises SmokeError after `within` seconds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > within:
            raise SmokeError(f"{what}: not within {within:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - started


def status(url: str) -> int:
    """The HTTP status of GET `url`; 0 if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - a fixed http://127.0.0.1 URL
            code: int = response.status
            return code
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class Smoke:
    """One smoke run: fresh topics and instance, two containers in turn, then the verdict."""

    def __init__(self, image: str, bootstrap: str) -> None:
        self.image = image
        self.bootstrap = bootstrap
        tag = uuid.uuid4().hex[:10]
        self.name = f"image-smoke-{tag}"
        self.port = free_port()
        self.env = {
            "EMITTER_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "EMITTER_KAFKA__TOPIC": self.name,
            "EMITTER_KAFKA__CURSOR_TOPIC": f"{self.name}-cursors",
            "EMITTER_KAFKA__DEAD_LETTER_TOPIC": f"{self.name}-dlq",
            "EMITTER_KAFKA__TRANSACTIONAL_ID_PREFIX": self.name,
            "EMITTER_EMITTER__INSTANCE": self.name,
            "EMITTER_EMITTER__SOURCE": "demo",
            "EMITTER_EMITTER__DEMO_GROUPS": str(GROUPS),
            "EMITTER_EMITTER__DEMO_HISTORY": str(HISTORY),
            "EMITTER_EMITTER__DEMO_LIMIT": str(LIMIT),
            "EMITTER_EMITTER__DEMO_RATE": str(RATE),
            "EMITTER_EMITTER__DRAIN_TIMEOUT": str(DRAIN),
            # The host's network is shared: the probes answer on loopback only.
            "EMITTER_TELEMETRY__HTTP_HOST": "127.0.0.1",
            "EMITTER_TELEMETRY__HTTP_PORT": str(self.port),
        }
        self.settings = load_settings(
            None,
            {
                "kafka": {
                    "bootstrap_servers": bootstrap,
                    "topic": self.name,
                    "cursor_topic": f"{self.name}-cursors",
                    "dead_letter_topic": f"{self.name}-dlq",
                    "transactional_id_prefix": self.name,
                },
                "emitter": {"instance": self.name},
            },
        )
        self.containers: list[str] = []

    def url(self, path: str) -> str:
        """A URL of the container's HTTP server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, run: int) -> str:
        """Start a container (detached, read-only root, host network, the image's own user); its name."""
        name = f"{self.name}-{run}"
        env = [arg for key, value in self.env.items() for arg in ("-e", f"{key}={value}")]
        podman("run", "--detach", "--name", name, "--read-only", "--network=host", *env, self.image)
        self.containers.append(name)
        return name

    def logs(self, name: str) -> str:
        """The container's output so far."""
        done = podman("logs", name, check=False)
        return done.stdout + done.stderr

    def running(self, name: str) -> bool:
        """Whether the container is still running."""
        return podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"

    def ids(self) -> dict[int, list[int]]:
        """NEW message ids per group, as a read_committed consumer sees them."""
        return new_ids_by_group(asyncio.run(read_committed(self.bootstrap, self.settings.kafka.topic)))

    def cursors(self) -> dict[int, GroupCursor]:
        """The instance's committed cursors, read as a restarting emitter reads them."""
        return asyncio.run(KafkaSink(self.settings.kafka, self.settings.emitter.instance).load_cursors())

    def check_identity(self, name: str) -> None:
        """The process runs as the image's UID and its root file system refuses writes."""
        uid = podman("exec", name, "python", "-c", "import os; print(os.getuid())").stdout.strip()
        if uid != str(UID):
            raise SmokeError(f"the emitter runs as uid {uid}, expected {UID}")
        probe = "import pathlib; pathlib.Path('/usr/smoke').write_text('x')"
        if podman("exec", name, "python", "-c", probe, check=False).returncode == 0:
            raise SmokeError("the root file system accepted a write: expected --read-only to refuse it")

    def probes(self, name: str) -> tuple[float, float]:
        """Seconds until /healthz and then /readyz answer 200; the HEALTHCHECK must pass too."""

        def answers(path: str) -> Callable[[], bool]:
            def check() -> bool:
                if not self.running(name):
                    raise SmokeError(f"the container exited before {path} answered: {self.logs(name)[-2000:]}")
                return status(self.url(path)) == 200

            return check

        healthy = wait_until(answers("/healthz"), 60, "/healthz 200")
        ready = wait_until(answers("/readyz"), 60, "/readyz 200")
        if "restored" not in self.logs(name):
            raise SmokeError("/readyz answered 200 before the cursors were restored")
        done = podman("healthcheck", "run", name, check=False)
        if done.returncode != 0:
            raise SmokeError(f"podman healthcheck run failed ({done.returncode}): {done.stdout}{done.stderr}")
        return healthy, ready

    def sigterm(self, name: str) -> float:
        """SIGTERM the container; the seconds until it exited. Its exit code must be 0 within DRAIN."""
        sent = time.monotonic()
        podman("kill", "--signal", "TERM", name)
        code = podman("wait", name).stdout.strip()
        took = time.monotonic() - sent
        if code != "0":
            raise SmokeError(f"exit code {code} after SIGTERM, expected 0: {self.logs(name)[-2000:]}")
        if took > DRAIN:
            raise SmokeError(f"SIGTERM took {took:.1f} s to end the container, more than the {DRAIN:.0f} s bound")
        return took

    def check_prefix(self) -> int:
        """After a stop: per group the committed ids are 1..n once each and the cursor covers exactly them."""
        ids, cursors, total = self.ids(), self.cursors(), 0
        for group, got in ids.items():
            if got != list(range(1, len(got) + 1)):
                raise SmokeError(f"group {group}: committed ids are not 1..{len(got)} exactly once after SIGTERM")
            cursor = cursors.get(group)
            if cursor is None or not all(cursor.is_published(i) for i in got) or cursor.is_published(len(got) + 1):
                raise SmokeError(f"group {group}: cursor {cursor} does not match the {len(got)} committed ids")
            total += len(got)
        return total

    def cleanup(self) -> None:
        """Remove the containers and the topics (a repeated smoke must not fill the shared broker)."""
        for name in self.containers:
            podman("rm", "--force", name, check=False)
        k = self.settings.kafka
        asyncio.run(delete_topics(self.bootstrap, [k.topic, k.cursor_topic, k.dead_letter_topic]))

    def run(self) -> str:
        """Both containers in turn; the line that says what was proved."""
        first = self.start(1)
        self.check_identity(first)
        healthy, ready = self.probes(first)
        live = HISTORY * GROUPS + 100
        wait_until(lambda: sum(map(len, self.ids().values())) >= live, 120, f"{live} records in Kafka")
        drained = self.sigterm(first)
        before = self.check_prefix()
        if before >= LIMIT * GROUPS:
            raise SmokeError("every message was already in Kafka at SIGTERM: the stop interrupted nothing")

        second = self.start(2)
        self.probes(second)
        if f"restored {GROUPS} cursors" not in self.logs(second):
            raise SmokeError(f"the restarted container did not restore {GROUPS} cursors: {self.logs(second)[-2000:]}")
        # With every group at its demo limit the emitter ends by itself.
        wait_until(lambda: not self.running(second), 120, "the restarted emitter to finish")
        code = podman("wait", second).stdout.strip()
        if code != "0":
            raise SmokeError(f"the restarted emitter exited with {code}: {self.logs(second)[-2000:]}")
        expected = list(range(1, LIMIT + 1))
        after = self.ids()
        if len(after) != GROUPS or any(got != expected for got in after.values()):
            raise SmokeError(f"after the restart the groups hold {[len(v) for v in after.values()]} ids")
        return (
            f"image smoke: {self.image} read-only as uid {UID}: /healthz 200 in {healthy:.1f} s, /readyz 200 "
            f"{ready:.1f} s later, healthcheck passed, {before} records in Kafka at SIGTERM, exit 0 in "
            f"{drained:.1f} s (bound {DRAIN:.0f} s), a gapless prefix; restarted from {GROUPS} cursors: "
            f"{GROUPS} groups x {LIMIT} ids exactly once"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke test; 0 when every check held."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--image", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args(argv)
    smoke = Smoke(args.image, args.bootstrap)
    started = time.monotonic()
    try:
        line = smoke.run()
    except SmokeError as e:
        print(f"image smoke: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        smoke.cleanup()
    print(f"{line} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
