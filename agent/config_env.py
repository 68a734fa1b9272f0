"""How environment variables name settings, and what to say about the ones that do not.

The one scheme: ``RCA_`` + the setting's YAML path in capitals, sections joined by two
underscores: ``backend`` is ``RCA_BACKEND``, ``slack.default_channel`` is
``RCA_SLACK__DEFAULT_CHANNEL``. Two misspellings silently did nothing before (a user wrote
``RCA_SLACK_DEFAULT_CHANNEL`` and got no Slack posts), so:

- a name that is a setting's name with one underscore where two belong, or two where one
  belongs (``RCA_SLACK_DEFAULT_CHANNEL``, ``RCA_SLACK__BOT_TOKEN``), is read as that setting,
  with a note that names the documented spelling; the documented spelling wins when both are
  set;
- any other unknown ``RCA_*`` name is a note that names the closest real one (difflib).

Names that are not settings by design are left alone: the test suite's switches
(``RCA_REQUIRE_INTEGRATION``, ``RCA_TEST_*``...) and the variables Kubernetes derives from a
Service named ``rca-...`` (``RCA_AGENT_SERVICE_HOST``, ``RCA_AGENT_PORT_80_TCP``...); those are
never read as settings, since ``RCA_SERVICE_PORT`` from a Service named ``rca`` is not a port
number the agent should listen on.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

PREFIX = "RCA_"
NOT_SETTINGS = frozenset({"RCA_REQUIRE_INTEGRATION", "RCA_UPDATE_GOLDEN", "RCA_SCREENSHOT_DIR"})
"""Switches of the test suite and CI (tests/, Makefile), not of the agent."""
NOT_SETTINGS_PREFIXES = ("RCA_TEST_",)
_SERVICE_LINK = re.compile(
    r"^[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$"
)
"""What the kubelet sets for every Service in the namespace (``enableServiceLinks``)."""


def setting_paths(
    model: type[BaseModel], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], bool]]:
    """The YAML path of every setting, sections included (a section can be set as JSON), and
    whether it is a mapping (whose keys may follow in the name: ``..._HEADERS__X_ORG``)."""
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        kind = info.annotation
        yield path, kind is dict or typing.get_origin(kind) is dict
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from setting_paths(kind, path)


def env_name(path: tuple[str, ...]) -> str:
    """``("slack", "default_channel")`` -> ``RCA_SLACK__DEFAULT_CHANNEL``."""
    return PREFIX + "__".join(part.upper() for part in path)


def _flat(name: str) -> str:
    """The name with every run of underscores as one: what both misspellings share."""
    return re.sub(r"_+", "_", name.upper())


@dataclass
class EnvReading:
    """``renamed``: misspelled name -> the setting's documented name it is read as."""

    renamed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_environment(environ: Mapping[str, str], model: type[BaseModel]) -> EnvReading:
    """Which ``RCA_*`` names to read as another setting's, and a note for each name that is
    not a setting. Pure: the caller passes the environment."""
    paths = list(setting_paths(model))
    known = {env_name(path) for path, _ in paths}
    path_of = {env_name(path): path for path, _ in paths}
    mappings = tuple(env_name(path) + "__" for path, mapping in paths if mapping)
    by_flat: dict[str, set[str]] = {}
    for name in known:
        by_flat.setdefault(_flat(name), set()).add(name)
    reading = EnvReading()
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or _not_a_setting(upper):
            continue
        if upper.startswith(mappings):
            continue  # a key inside a mapping setting, e.g. RCA_PROMETHEUS__HEADERS__X_ORG
        same = by_flat.get(_flat(upper), set())
        if _SERVICE_LINK.match(upper):
            if len(same) == 1:
                (meant,) = same
                reading.notes.append(
                    f"{name} is ignored: it is what Kubernetes sets for a Service's address; "
                    f"for the setting write {meant}"
                )
            continue
        if len(same) == 1:
            (meant,) = same
            reading.renamed[name] = meant
            both = ", which is set too and wins" if _present(environ, meant) else ""
            reading.notes.append(f"{name} is read as {meant}{both}: {_why(path_of[meant])}")
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else " (docs/configuration.md lists them)"
        reading.notes.append(f"{name} is not a setting{hint}")
    return reading


def _why(path: tuple[str, ...]) -> str:
    if len(path) == 1:
        return f"{path[0]} is a top-level setting (one word after RCA_, no double underscore)"
    section, key = ".".join(path[:-1]), path[-1]
    return f"{key} sits in the {section}: section, joined to it by two underscores"


def _not_a_setting(name: str) -> bool:
    return name in NOT_SETTINGS or name.startswith(NOT_SETTINGS_PREFIXES)


def _present(environ: Mapping[str, str], name: str) -> bool:
    return any(key.upper() == name for key in environ)


def renamed_env_vars(
    env_vars: Mapping[str, Any], renamed: Mapping[str, str], case_sensitive: bool = False
) -> dict[str, Any]:
    """pydantic-settings' view of the environment (``EnvSettingsSource.env_vars``, lower-case
    names unless case-sensitive) with each misspelled name replaced by the setting it means;
    a documented name that is set as well wins."""
    fold = (lambda n: n) if case_sensitive else str.lower
    result = dict(env_vars)
    for wrong, meant in renamed.items():
        value = result.pop(fold(wrong), None)
        if value is not None and fold(meant) not in result:
            result[fold(meant)] = value
    return result
