"""``rca serve`` refuses unsafe or unusable settings with one error line, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from service_support import free_port

from agent.cli import cli


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", *args], env=env)
    return result.exit_code, result.output


def test_open_api_on_a_public_address_is_refused() -> None:
    code, output = run({"RCA_API_TOKENS": "", "RCA_WEBHOOK_TOKEN": ""}, "--host", "0.0.0.0")
    assert code == 2
    assert output.startswith("rca: error: refusing to listen on 0.0.0.0 without RCA_API_TOKENS")
    assert "Traceback" not in output


def test_unreachable_database_is_one_error_line() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/rca"
    code, output = run({"RCA_DATABASE_URL": url})
    assert code == 1
    assert output.startswith("rca: error: database postgresql+psycopg://postgres@127.0.0.1:")
    assert "unavailable" in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["nosuchdb://x", "not a url"])
def test_bad_database_url_is_a_config_error(url: str) -> None:
    code, output = run({"RCA_DATABASE_URL": url})
    assert code == 2
    assert output.startswith("rca: error: invalid setting database_url")


def test_short_api_token_is_a_config_error() -> None:
    code, output = run({"RCA_API_TOKENS": "abc:read"})
    assert code == 2
    assert "api_tokens.0.token" in output
