"""The one exception tree of rca-agent.

Every error the user can cause or fix is one of these; the CLI prints ``str(error)`` as a
single line on stderr (``error.lines()``: one line per invalid setting) and exits with
``error.exit_code``. Anything else is a bug.

::

    RcaError                      exit 1
    ├── UsageError                exit 2  bad flag values, unknown fault type, bad seed range
    ├── SnapshotError             exit 2  malformed snapshot; names the file and the field
    ├── ConfigError               exit 2  bad settings file or environment value
    ├── SourceError               exit 3  a source (Prometheus, Elasticsearch, ...) is down,
    │                                     rejects us or fails; recorded, not raised, inside an
    │                                     analysis while another source still answers
    ├── EmptyWindow               exit 4  every source answered, none holds data in the window
    └── DatabaseUnavailable       exit 1  the service's database cannot be reached

Exit 1 is otherwise left to bugs (``rca: internal error``), so a script can tell "fix the
setup" (2), "a source is down" (3) and "nothing there at that time" (4) apart from a crash.
"""

from __future__ import annotations


class RcaError(Exception):
    """Base class: an error with a message meant for the person running the tool."""

    exit_code = 1

    def lines(self) -> list[str]:
        """What the CLI prints, one ``rca: error:`` line each (several invalid settings are
        several lines; everything else is one)."""
        return [str(self)]


class UsageError(RcaError):
    """The command was called with arguments that cannot work."""

    exit_code = 2


class SnapshotError(RcaError):
    """A snapshot directory is missing, unreadable or malformed."""

    exit_code = 2

    def __init__(self, file: str, field: str | None, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        where = f"{file}: {field}" if field else file
        super().__init__(f"invalid snapshot: {where}: {message}")


class ConfigError(RcaError):
    """Configuration cannot be loaded or is inconsistent."""

    exit_code = 2


class SourceError(RcaError):
    """A telemetry source (Prometheus, Elasticsearch, ...) failed or timed out."""

    exit_code = 3

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")


class EmptyWindow(RcaError):
    """Every source answered, but none holds data for the time window asked about: most often
    an old incident looked at "now". The message says which window and what to try."""

    exit_code = 4


class DatabaseUnavailable(RcaError):
    """The service's database cannot be reached or migrated."""
