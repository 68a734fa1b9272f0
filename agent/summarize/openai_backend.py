"""The ``openai`` backend: chat completions through the ``openai`` SDK.

Works with api.openai.com, Azure OpenAI (``summarizer.azure_endpoint``) and any
OpenAI-compatible base URL: vLLM serving our LoRA adapter, Ollama, a gateway.

* Structured output: ``response_format`` ``json_schema`` (strict) where the endpoint supports
  it, ``json_object`` otherwise. With an answer spec the schema is per request, with ``enum``s
  for the root-cause service, the fault type and the evidence ids (vLLM decodes against it).
  An endpoint that rejects ``json_schema`` with a 400 is asked again in ``json_object`` mode,
  and this backend stays in that mode afterwards.
* Timeouts and retries are the SDK's: ``timeout_s`` per request and ``max_retries`` with
  exponential backoff on 429 (honouring ``Retry-After``), 5xx, connection errors and timeouts.
* Accounting: ``usage`` of each response, priced with ``summarizer.prices``.

Token counts for the prompt budget are estimates (no tokenizer download at run time): see
:func:`agent.summarize.prompt.estimate_tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import openai

from agent import tracing
from agent.errors import ConfigError
from agent.summarize.answer import response_format
from agent.summarize.llm import Completion, LlmCallError
from agent.summarize.prompt import Message, estimate_tokens
from agent.summarize.settings import ModelPrice, SummarizerSettings
from agent.summarize.spec import AnswerSpec

# Local servers (vLLM, Ollama) ignore the key, but the SDK needs a non-empty one.
_LOCAL_KEY = "not-needed"


def price_of(model: str, prices: dict[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model``: an exact entry, else the longest prefix (dated snapshots)."""
    if model in prices:
        return prices[model]
    matches = [name for name in prices if model.startswith(name)]
    return prices[max(matches, key=len)] if matches else None


def make_client(
    settings: SummarizerSettings, http_client: httpx.Client | None = None
) -> openai.OpenAI:
    """The SDK client for the configured endpoint; a missing key is a configuration error."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    common: dict[str, Any] = {
        "timeout": settings.timeout_s,
        "max_retries": settings.max_retries,
        "http_client": http_client,
    }
    if settings.azure_endpoint:
        if key is None:
            raise ConfigError(
                "the Azure OpenAI backend needs summarizer.api_key (RCA_SUMMARIZER__API_KEY)"
            )
        return openai.AzureOpenAI(
            azure_endpoint=settings.azure_endpoint,
            api_version=settings.azure_api_version,
            api_key=key,
            **common,
        )
    if key is None and settings.base_url is None:
        raise ConfigError(
            "the openai backend needs summarizer.api_key (set RCA_SUMMARIZER__API_KEY), or "
            "summarizer.base_url for a local OpenAI-compatible server"
        )
    return openai.OpenAI(api_key=key or _LOCAL_KEY, base_url=settings.base_url, **common)


def _rejects_json_schema(exc: openai.BadRequestError) -> bool:
    text = str(exc).lower()
    return "response_format" in text or "json_schema" in text


class OpenAIBackend:
    """Chat completions against one model of one endpoint."""

    name = "openai"
    remote = True

    def __init__(self, settings: SummarizerSettings, client: openai.OpenAI | None = None) -> None:
        self.settings = settings
        self.client = client or make_client(settings)
        self.mode = settings.response_format
        self.price = price_of(settings.model, settings.prices)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(messages)

    def _create(self, messages: Sequence[Message], spec: AnswerSpec | None) -> Any:
        return self.client.chat.completions.create(  # type: ignore[call-overload]
            model=self.settings.model,
            messages=list(messages),
            response_format=response_format(self.mode, spec),
            temperature=0,
            max_tokens=self.settings.max_new_tokens,
        )

    def complete(self, messages: Sequence[Message], spec: AnswerSpec | None = None) -> Completion:
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": self.settings.model,
            "server.address": str(getattr(self.client, "base_url", "")) or None,
        }
        with tracing.span(f"chat {self.settings.model}", attributes, kind="client") as span:
            completion = self._complete(messages, spec)
            span.set_attribute("gen_ai.usage.input_tokens", completion.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", completion.completion_tokens)
            return completion

    def _complete(self, messages: Sequence[Message], spec: AnswerSpec | None) -> Completion:
        try:
            try:
                response = self._create(messages, spec)
            except openai.BadRequestError as exc:
                if self.mode != "json_schema" or not _rejects_json_schema(exc):
                    raise
                self.mode = "json_object"
                response = self._create(messages, spec)
        except openai.APITimeoutError:
            raise LlmCallError(
                f"timed out after {self.settings.timeout_s:g} s "
                f"({self.settings.max_retries} retries)"
            ) from None
        except openai.APIStatusError as exc:
            raise LlmCallError(f"HTTP {exc.status_code}: {_detail(exc)}") from None
        except openai.APIError as exc:
            raise LlmCallError(f"{type(exc).__name__}: {_short(str(exc))}") from None
        return self._completion(response)

    def _completion(self, response: Any) -> Completion:
        if not response.choices:
            raise LlmCallError("the response has no choices")
        text = response.choices[0].message.content or ""
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        cost = 0.0
        if self.price is not None:
            cost = (prompt_tokens * self.price.input + completion_tokens * self.price.output) / 1e6
        return Completion(text, prompt_tokens, completion_tokens, cost)


def _detail(exc: openai.APIStatusError) -> str:
    """The API's own error message (``{"error": {"message": ...}}``), not the SDK's wrapper."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    return _short(message if isinstance(message, str) and message else exc.message)


def _short(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
