"""The ``hf`` backend: a causal LM (plus an optional LoRA adapter) in this process.

transformers + peft, CPU or CUDA (float32 on CPU, bfloat16 on CUDA when supported, else
float16), greedy decoding, capped new tokens, the model's own chat template. Given an
:class:`~agent.summarize.spec.AnswerSpec` (the guard always passes one), decoding is
constrained to the answer grammar (:mod:`agent.summarize.guide`), so the answer passes the
guard by construction; ``constrained=False`` (``summarizer.hf_constrained``) turns that off.

Nothing is downloaded at run time: the base model is a local directory, the ``smollm2`` alias
(cached by ``rca models fetch smollm2``) or a Hugging Face id already in the local cache;
anything else is a :class:`~agent.summarize.llm.ModelNotAvailableError` naming the command
that fetches it.

torch and transformers are imported only when a model is loaded, so the core install (no
``[local]`` extra) still imports this package.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.summarize.grammar import AnswerGrammar
from agent.summarize.guide import AnswerGuide, TokenTable
from agent.summarize.llm import Completion, LlmCallError, ModelNotAvailableError
from agent.summarize.prompt import Message
from agent.summarize.spec import AnswerSpec

ALIASES = {"smollm2": "smollm2-135m-instruct"}
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_INSTALL_HINT = "install the local extra: pip install 'rca-agent[local]'"


def resolve_model(spec: str, models_dir: Path) -> str:
    """A loadable model reference for ``spec`` (alias, directory or cached hub id)."""
    if spec in ALIASES:
        path = models_dir / ALIASES[spec]
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"model {spec} is not cached in {models_dir}: run `rca models fetch {spec}`"
            )
        return str(path)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"{path} is not a model directory (no config.json)")
        return str(path)
    if _HUB_ID.match(spec) and not spec.startswith((".", "/")):
        return spec  # checked against the local hub cache when loaded (local_files_only)
    raise ModelNotAvailableError(
        f"model {spec} not found: give a model directory, a Hugging Face id already in the "
        "local cache, or run `rca models fetch smollm2`"
    )


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"the hf backend needs {module}: {_INSTALL_HINT}") from None


def pick_device(requested: str, torch: Any) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("summarizer.hf_device is cuda but no CUDA device is available")
    return requested


def dtype_for(device: str, torch: Any) -> Any:
    if device == "cpu":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class HfBackend:
    """One base model (and adapter) loaded on first use and kept for the process."""

    remote = False

    def __init__(
        self,
        model: str,
        *,
        adapter: Path | None = None,
        device: str = "auto",
        max_new_tokens: int = 400,
        threads: int | None = None,
        name: str = "hf",
        constrained: bool = True,
    ) -> None:
        if adapter is not None and not (adapter / "adapter_config.json").is_file():
            raise ModelNotAvailableError(f"LoRA adapter {adapter} has no adapter_config.json")
        self.model_ref = model
        self.adapter = adapter
        self.requested_device = device
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.name = name
        self.constrained = constrained

    @cached_property
    def tokenizer(self) -> Any:
        transformers = _require("transformers")
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                self.model_ref, local_files_only=True
            )
        except OSError as exc:
            raise ModelNotAvailableError(
                f"cannot load the tokenizer of {self.model_ref} without downloading "
                f"({_first_line(exc)}); fetch it beforehand, e.g. `rca models fetch smollm2`"
            ) from None
        if tokenizer.chat_template is None:
            raise ConfigError(f"model {self.model_ref} has no chat template")
        return tokenizer

    @cached_property
    def model(self) -> Any:
        torch = _require("torch")
        transformers = _require("transformers")
        device = pick_device(self.requested_device, torch)
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(
                self.model_ref, dtype=dtype_for(device, torch), local_files_only=True
            )
        except OSError as exc:
            raise ModelNotAvailableError(
                f"cannot load model {self.model_ref} without downloading ({_first_line(exc)}); "
                "fetch it beforehand, e.g. `rca models fetch smollm2`"
            ) from None
        if self.adapter is not None:
            peft = _require("peft")
            model = peft.PeftModel.from_pretrained(model, str(self.adapter))
        return model.to(device).eval()

    def load(self) -> None:
        """Load tokenizer and weights now (the service does this at start-up)."""
        _ = self.tokenizer, self.model

    def _encode(self, messages: Sequence[Message]) -> Any:
        return self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return int(self._encode(messages)["input_ids"].shape[-1])

    @cached_property
    def token_table(self) -> TokenTable:
        """What each token writes (built once per tokenizer, well under a second)."""
        return TokenTable.from_tokenizer(self.tokenizer)

    def _guided(self, spec: AnswerSpec, prompt_len: int) -> dict[str, Any]:
        """The generate() arguments that keep decoding inside the answer grammar of ``spec``."""
        transformers = _require("transformers")
        table = self.token_table
        guide = AnswerGuide(
            AnswerGrammar(spec), table, prompt_len=prompt_len, max_new_tokens=self.max_new_tokens
        )
        return {
            "logits_processor": transformers.LogitsProcessorList([guide]),
            "eos_token_id": table.eos_id,
        }

    def complete(self, messages: Sequence[Message], spec: AnswerSpec | None = None) -> Completion:
        torch = _require("torch")
        model = self.model
        inputs = self._encode(messages).to(model.device)
        prompt_len = int(inputs["input_ids"].shape[-1])
        pad = self.tokenizer.pad_token_id
        extra: dict[str, Any] = {}
        decoding: dict[str, Any] = {"skip_special_tokens": True}
        if spec is not None and self.constrained:
            extra = self._guided(spec, prompt_len)
            # the guide checked the tokens' own texts: no clean-up of spaces around them
            decoding["clean_up_tokenization_spaces"] = False
        try:
            with torch.inference_mode():
                # Only what a causal LM reads: transformers 4.x refuses generate() when the
                # tokenizer also returns token_type_ids (a PreTrainedTokenizerFast does).
                output = model.generate(
                    input_ids=inputs["input_ids"],
                    attention_mask=inputs.get("attention_mask"),
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id,
                    **extra,
                )
        except (RuntimeError, ValueError) as exc:  # OOM, bad generation config
            raise LlmCallError(f"generation failed: {_first_line(exc)}") from None
        new = output[0][prompt_len:]
        text = self.tokenizer.decode(new, **decoding)
        return Completion(text, prompt_len, int(new.shape[-1]))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
