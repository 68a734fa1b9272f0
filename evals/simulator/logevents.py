"""Log lines that events leave behind: start-up banners after a deploy or a restart, OOM kills,
batch jobs, disk-usage warnings.

A deploy reads the same whether it broke something or not; only what follows differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evals.simulator.logformat import Voice, render, resource_name, stack_trace
from evals.simulator.messages import OWN, Params, pick
from evals.simulator.telemetry import Event, Telemetry, version_text


@dataclass(frozen=True)
class Line:
    """One log line before it becomes a :class:`~agent.models.LogRecord`."""

    when: float
    service: str
    pod: str | None
    level: str
    message: str
    trace: str | None = None


_STARTUP = {
    "java": (
        "Starting {app}Application {version} using Java 17.0.{n} with PID 1",
        "Started {app}Application in {secs} seconds (process running for {secs2})",
    ),
    "go": ("starting {service} version={version}", "listening on :8080"),
    "python": (
        "booting {service} {version}",
        "Started server process [1]",
        "Uvicorn running on http://0.0.0.0:8080 (Press CTRL+C to quit)",
    ),
    "node": ("{service}@{version} starting", "Server listening at http://0.0.0.0:8080"),
    "postgres": ("database system is ready to accept connections",),
    "redis": ("Ready to accept connections tcp",),
    "mongodb": ("Waiting for connections",),
}


def _startup(
    event: Event, voice: Voice, pod: str, at: float, rng: np.random.Generator
) -> list[Line]:
    version = event.detail.get("version", "")
    params = Params(
        rng,
        app="".join(p.capitalize() for p in resource_name(voice.service).split("-")),
        service=voice.service,
        version=version,
        secs=f"{rng.uniform(3, 14):.3f}",
        secs2=f"{rng.uniform(4, 16):.3f}",
    )
    lines = []
    for step, template in enumerate(_STARTUP.get(voice.runtime, ("started",))):
        when = at + 0.5 + step * rng.uniform(0.2, 2.0)
        text = template.format_map(params)
        lines.append(Line(when, voice.service, pod, "INFO", render(voice, when, "INFO", text, {})))
    return lines


def _started_pods(telemetry: Telemetry, event: Event) -> list[str]:
    """Pods that start at the event: a new ReplicaSet's, or a StatefulSet's recreated ones."""
    series = telemetry.services[event.service]
    index = event.index
    fresh = [
        p.name for p in series.pods if p.alive[index] and (index == 0 or not p.alive[index - 1])
    ]
    return fresh or [p.name for p in series.live_pods(index)]


def _deploy(
    event: Event, voice: Voice, telemetry: Telemetry, rng: np.random.Generator
) -> list[Line]:
    at = telemetry.timeline.time(event.index) + rng.uniform(0, telemetry.timeline.resolution)
    lines = []
    if rng.random() < 0.6:
        detail = event.detail
        text = f"deployed version {detail['version']} (previous {detail['previous']})"
        lines.append(Line(at, voice.service, None, "INFO", render(voice, at, "INFO", text, {})))
    for pod in _started_pods(telemetry, event):
        lines += _startup(event, voice, pod, at, rng)
    return lines


def _oom(event: Event, voice: Voice, telemetry: Telemetry, rng: np.random.Generator) -> list[Line]:
    at = telemetry.timeline.time(event.index) + rng.uniform(0, telemetry.timeline.resolution)
    text = pick(OWN["oom"], voice.runtime, rng).format_map(Params(rng, service=voice.service))
    stack = None
    if voice.runtime == "java" and text.startswith("java.lang"):
        stack = stack_trace("java", voice.service, *text.split(": ", 1))
        text = "Uncaught exception in thread http-nio-8080-exec-1"
    lines = [
        Line(
            at, voice.service, event.pod, "CRITICAL", render(voice, at, "CRITICAL", text, {}, stack)
        )
    ]
    if rng.random() < 0.5:
        series = telemetry.services[event.service]
        count = next((p.restarts[event.index] for p in series.pods if p.name == event.pod), 1)
        note = (
            f"container {voice.service} in pod {event.pod} was OOMKilled (exit code 137), "
            f"restart count {int(np.nan_to_num(count))}"
        )
        lines.append(Line(at + 0.2, voice.service, event.pod, "WARN", note))
    version = version_text(telemetry.services[event.service].version)
    restart = Event(event.index, event.service, "restart", event.pod, {"version": version})
    return lines + _startup(restart, voice, event.pod or "", at + 1.0, rng)


def _batch(
    event: Event, voice: Voice, telemetry: Telemetry, rng: np.random.Generator
) -> list[Line]:
    at = telemetry.timeline.time(event.index) + rng.uniform(0, telemetry.timeline.resolution)
    job = event.detail["job"]
    if event.kind == "batch_start":
        text = f"starting batch job {job}"
    else:
        text = f"batch job {job} finished: {int(rng.integers(1000, 1_000_000))} records processed"
    return [Line(at, voice.service, event.pod, "INFO", render(voice, at, "INFO", text, {}))]


def _disk_warning(
    event: Event, voice: Voice, telemetry: Telemetry, rng: np.random.Generator
) -> list[Line]:
    at = telemetry.timeline.time(event.index) + rng.uniform(0, telemetry.timeline.resolution)
    text = f"disk usage on /data at {event.detail['percent']}% (threshold 90%)"
    live = telemetry.services[event.service].live_pods(event.index)
    pod = live[0].name if live else None
    return [Line(at, voice.service, pod, "WARN", render(voice, at, "WARN", text, {}))]


def event_lines(
    event: Event, voice: Voice, telemetry: Telemetry, rng: np.random.Generator
) -> list[Line]:
    writers = {
        "deploy": _deploy,
        "oom": _oom,
        "batch_start": _batch,
        "batch_end": _batch,
        "disk_warn": _disk_warning,
    }
    return writers[event.kind](event, voice, telemetry, rng)
