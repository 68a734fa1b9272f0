"""Settings from the environment and the file as a user writes them: misspelled ``RCA_*``
names (read as the setting they mean, or named with the closest real one), every invalid value
at once, and ``--config`` before or after the subcommand."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli import cli
from agent.clikit import CliState, log_level_name
from agent.config import InvalidSettings, Settings, read_settings
from agent.config_env import read_environment


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RCA_"):
            monkeypatch.delenv(name)


def _rca(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def test_the_reported_case_single_underscore_reaches_the_slack_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user wrote RCA_SLACK_DEFAULT_CHANNEL (like RCA_SLACK_BOT_TOKEN beside it) and got
    no error and no Slack posts."""
    monkeypatch.setenv("RCA_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("RCA_SLACK_DEFAULT_CHANNEL", "#incidents")
    reading = read_settings()
    assert reading.settings.slack.default_channel == "#incidents"
    assert reading.settings.slack_bot_token is not None
    assert reading.notes == [
        "RCA_SLACK_DEFAULT_CHANNEL is read as RCA_SLACK__DEFAULT_CHANNEL: default_channel sits "
        "in the slack: section, joined to it by two underscores"
    ]


def test_double_underscore_on_a_top_level_setting_is_read_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RCA_PROMETHEUS__URL", "http://prom:9090")
    reading = read_settings()
    assert reading.settings.prometheus_url == "http://prom:9090"
    assert reading.notes[0].startswith("RCA_PROMETHEUS__URL is read as RCA_PROMETHEUS_URL: ")


def test_the_documented_name_wins_when_both_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_SLACK__DEFAULT_CHANNEL", "#right")
    monkeypatch.setenv("RCA_SLACK_DEFAULT_CHANNEL", "#wrong")
    reading = read_settings()
    assert reading.settings.slack.default_channel == "#right"
    assert "which is set too and wins" in reading.notes[0]


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("RCA_BAKCEND", "RCA_BACKEND"),
        ("RCA_PROMETHEUS_ULR", "RCA_PROMETHEUS_URL"),
        ("RCA_ENGINE__LOOKBAK_MINUTES", "RCA_ENGINE__LOOKBACK_MINUTES"),
    ],
)
def test_an_unknown_name_names_the_closest_setting(name: str, closest: str) -> None:
    reading = read_environment({name: "x"}, Settings)
    assert reading.renamed == {}
    assert reading.notes == [f"{name} is not a setting; did you mean {closest}?"]


def test_names_that_are_not_settings_by_design_are_left_alone() -> None:
    environ = {
        "RCA_REQUIRE_INTEGRATION": "1",  # CI's switch
        "RCA_TEST_ELASTICSEARCH_URL": "http://es:9200",
        "RCA_AGENT_SERVICE_HOST": "10.0.0.7",  # Kubernetes: a Service named rca-agent
        "RCA_AGENT_PORT_80_TCP_ADDR": "10.0.0.7",
        "RCA_PROMETHEUS__HEADERS__X_SCOPE_ORGID": "tenant-1",  # a key of a mapping setting
        "HOME": "/root",
    }
    assert read_environment(environ, Settings).notes == []


def test_a_service_link_is_never_read_as_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Service named ``rca`` makes the kubelet set RCA_SERVICE_PORT=tcp://...: not the port
    to listen on."""
    monkeypatch.setenv("RCA_SERVICE_PORT", "tcp://10.0.0.7:80")
    reading = read_settings()
    assert reading.settings.service.port == 8080
    assert reading.notes == [
        "RCA_SERVICE_PORT is ignored: it is what Kubernetes sets for a Service's address; "
        "for the setting write RCA_SERVICE__PORT"
    ]


def test_the_cli_prints_notes_as_warnings(tmp_path: Path) -> None:
    result = _rca("models", "list", env={"RCA_BAKCEND": "hf", "RCA_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0
    assert (
        result.stderr == "rca: warning: RCA_BAKCEND is not a setting; did you mean RCA_BACKEND?\n"
    )


def test_every_invalid_setting_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "rca.yaml"
    config.write_text("prometheus_url: prom:9090\nengine:\n  max_evidence: 0\n")
    result = _rca(
        "--config",
        str(config),
        "check-sources",
        env={"RCA_ENGINE__Z_THRESHOLD": "-1", "RCA_SLACK__RETRIES": "many"},
    )
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4, lines
    assert all(line.startswith("rca: error: invalid setting ") for line in lines)
    named = " ".join(lines)
    for variable in (
        "RCA_PROMETHEUS_URL",
        "RCA_ENGINE__MAX_EVIDENCE",
        "RCA_ENGINE__Z_THRESHOLD",
        "RCA_SLACK__RETRIES",
    ):
        assert f"({variable})" in named


def test_invalid_settings_are_one_error_with_a_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RCA_ENGINE__Z_THRESHOLD", "0")
    monkeypatch.setenv("RCA_ENGINE__MAX_CANDIDATES", "0")
    with pytest.raises(InvalidSettings) as caught:
        read_settings()
    assert len(caught.value.lines()) == 2
    assert str(caught.value) == "; ".join(caught.value.lines())


def test_an_unknown_key_in_the_file_names_the_closest_setting(tmp_path: Path) -> None:
    config = tmp_path / "rca.yaml"
    config.write_text("slack:\n  default_chanel: '#x'\n")
    result = _rca("--config", str(config), "check-sources")
    assert result.exit_code == 2
    assert result.stderr == (
        "rca: error: invalid setting slack.default_chanel (RCA_SLACK__DEFAULT_CHANEL): not a "
        "setting; did you mean slack.default_channel (RCA_SLACK__DEFAULT_CHANNEL)?\n"
    )


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    config = tmp_path / "rca.yaml"
    config.write_text(f"summarizer:\n  models_dir: {tmp_path / 'models'}\n")
    args = ["models", "list", "--json"]
    args = (
        ["--config", str(config), *args] if where == "before" else [*args, "--config", str(config)]
    )
    result = _rca(*args)
    assert result.exit_code == 0, result.output
    assert f'"models_dir": "{tmp_path / "models"}"' in result.stdout


def test_config_given_twice_must_agree(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yaml", tmp_path / "two.yaml"
    for path in (one, two):
        path.write_text("{}\n")
    result = _rca("--config", str(one), "models", "list", "--config", str(two))
    assert result.exit_code == 2
    assert "--config given twice" in result.stderr
    assert _rca("--config", str(one), "models", "list", "--config", str(one)).exit_code == 0


def test_finetune_train_keeps_its_own_config_option() -> None:
    """``rca finetune train --config`` is the training recipe, not the settings file."""
    from finetune.train import train_command

    (own,) = [p for p in train_command.params if "--config" in p.opts]
    assert own.expose_value and own.name == "config_file"
    assert "Training recipe" in _rca("finetune", "train", "--help").stdout


@pytest.mark.parametrize(
    ("args", "level"),
    [((None, 1), "info"), ((None, 2), "debug"), (("WARNING", 2), "warning"), ((None, 0), None)],
)
def test_the_root_log_level_replaces_the_setting_rca_serve_reads(
    args: tuple[str | None, int], level: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCA_LOG_LEVEL", "error")
    assert log_level_name(*args) == level
    state = CliState(overrides={"log_level": level} if level else {})
    assert state.settings.log_level == (level or "error")
