"""The hf backend with a tiny randomly initialized Llama and a tokenizer built here (no
downloads): load, count, generate, validate, fall back; constrained decoding (even a random
model's answer passes the guard); LoRA adapters; missing models.

Skipped without the ``[local]`` extra (torch, transformers, peft). The SmolLM2 test runs only
when ``rca models fetch smollm2`` has cached the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import build_analysis, build_snapshot

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from agent.config import Settings  # noqa: E402 - after the importorskips
from agent.engine.pipeline import analyze  # noqa: E402
from agent.summarize.factory import build_summarizer  # noqa: E402
from agent.summarize.grammar import AnswerGrammar  # noqa: E402
from agent.summarize.guard import AnswerRejected, GuardedSummarizer, check_answer  # noqa: E402
from agent.summarize.guide import TOP_K, AnswerGuide, TokenTable  # noqa: E402
from agent.summarize.hf_backend import ALIASES, HfBackend, resolve_model  # noqa: E402
from agent.summarize.llm import ModelNotAvailableError  # noqa: E402
from agent.summarize.prompt import Prompt, build_prompt  # noqa: E402
from agent.summarize.settings import SummarizerSettings  # noqa: E402
from agent.summarize.spec import AnswerSpec, answer_spec  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer() -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = [
        '{"root_cause": {"service": "payments", "fault_type": "memory_leak"}} [M1] [L1]',
        "payments checkout frontend memory latency evidence incident service",
    ] * 20
    raw.train_from_iterator(corpus, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = _tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),  # type: ignore[arg-type]
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        eos_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
        pad_token_id=tokenizer.pad_token_id,  # type: ignore[attr-defined]
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)  # type: ignore[attr-defined]
    return directory


@pytest.fixture(scope="module")
def adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    peft = pytest.importorskip("peft")
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    lora = peft.get_peft_model(
        base, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(1)
    with torch.no_grad():  # a trained adapter has non-zero B; a fresh one is a no-op
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    directory = tmp_path_factory.mktemp("tiny-lora")
    lora.save_pretrained(directory)
    return directory


def _backend(
    model: Path, adapter: Path | None = None, *, max_new_tokens: int = 12, constrained: bool = True
) -> HfBackend:
    return HfBackend(
        str(model),
        adapter=adapter,
        device="cpu",
        max_new_tokens=max_new_tokens,
        name="hf:tiny",
        constrained=constrained,
    )


def test_loads_on_cpu_in_float32_and_counts_with_its_tokenizer(tiny_model: Path) -> None:
    backend = _backend(tiny_model)
    backend.load()
    assert backend.model.dtype == torch.float32
    assert backend.model.device.type == "cpu"
    prompt = build_prompt(build_analysis(), budget=2400, count_tokens=backend.count_tokens)
    assert prompt.tokens <= 2400 and prompt.evidence_ids
    ids = backend.tokenizer.apply_chat_template(prompt.messages, add_generation_prompt=True)
    assert prompt.tokens == len(ids if isinstance(ids, list) else ids["input_ids"])


def test_generates_greedily_with_capped_new_tokens(tiny_model: Path) -> None:
    backend = _backend(tiny_model)
    messages = [{"role": "user", "content": "payments memory"}]
    first = backend.complete(messages)
    assert 0 < first.completion_tokens <= 12
    assert first.prompt_tokens == backend.count_tokens(messages)
    assert backend.complete(messages).text == first.text  # greedy: deterministic


def test_random_model_output_is_rejected_and_falls_back(tiny_model: Path) -> None:
    backend = _backend(tiny_model, constrained=False)
    summarizer = GuardedSummarizer(backend, prompt_tokens=1200, redact=None)
    summary = summarizer.summarize(build_analysis())
    assert summary.backend == "extractive"
    assert summary.fallback is not None
    assert summary.fallback.startswith("hf:tiny answer rejected after repair:")
    assert [c.valid for c in summary.checks] == [False, False]
    assert summary.tokens["prompt"] > 1000 and 0 < summary.tokens["completion"] <= 24
    assert summary.root_cause is not None and summary.root_cause.service == "payments"


def _prompt_and_spec(backend: HfBackend) -> tuple[Prompt, AnswerSpec]:
    draft = build_analysis()
    prompt = build_prompt(draft, budget=1200, count_tokens=backend.count_tokens)
    spec = answer_spec(draft, prompt)
    assert spec is not None
    return prompt, spec


def test_constrained_random_model_passes_the_guard_and_free_one_does_not(
    tiny_model: Path,
) -> None:
    free = _backend(tiny_model, max_new_tokens=400, constrained=False)
    prompt, spec = _prompt_and_spec(free)
    with pytest.raises(AnswerRejected):
        check_answer(free.complete(prompt.messages, spec).text, build_analysis())
    summarizer = GuardedSummarizer(
        _backend(tiny_model, max_new_tokens=400), prompt_tokens=1200, redact=None
    )
    summary = summarizer.summarize(build_analysis())
    assert summary.fallback is None and summary.backend == "hf:tiny"
    assert [c.valid for c in summary.checks] == [True]  # no repair call needed
    assert 0 < summary.tokens["completion"] <= 400
    assert summary.root_cause is not None and summary.root_cause.service in spec.services


def test_constrained_answer_closes_inside_the_smallest_budget(tiny_model: Path) -> None:
    probe = _backend(tiny_model)
    prompt, spec = _prompt_and_spec(probe)
    floor = len(AnswerGrammar(spec).start().closing().encode())  # one token per byte at worst
    tight = _backend(tiny_model, max_new_tokens=floor)
    completion = tight.complete(prompt.messages, spec)
    assert completion.completion_tokens <= floor
    check_answer(completion.text, build_analysis())


def test_token_table_reads_tokens_as_the_decoder_writes_them(tiny_model: Path) -> None:
    backend = _backend(tiny_model)
    table, tokenizer = backend.token_table, backend.tokenizer
    assert table.text(tokenizer.eos_token_id) is None and table.eos_id == tokenizer.eos_token_id
    text = '{"root_cause": {"service": "payments"}} [M1] é'
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert "".join(table.text(i) or "?" for i in ids).replace("\ufffd", "") in text
    assert tokenizer.decode(ids) == text
    assert {t for t in ids if "\ufffd" in (table.text(t) or "")}  # é is two byte tokens here


def test_guide_finds_the_best_valid_token_beyond_the_top_k(tiny_model: Path) -> None:
    table: TokenTable = _backend(tiny_model).token_table
    _, spec = _prompt_and_spec(_backend(tiny_model))
    guide = AnswerGuide(AnswerGrammar(spec), table, prompt_len=1, max_new_tokens=400)
    scores = torch.arange(len(table.texts), dtype=torch.float32).flip(0)[None, :]  # id 0 best
    opening = [t for t, text in enumerate(table.texts) if text and text in ('{"', "{")]
    assert opening and min(opening) > TOP_K  # no valid token among the model's favourites
    out = guide(torch.tensor([[0]]), scores)
    assert int(out[0].argmax()) == min(opening) and guide.fallbacks == 1
    assert torch.isinf(out).sum() == out.numel() - 1  # everything else masked


def test_setting_turns_constraints_off(tiny_model: Path) -> None:
    cfg = SummarizerSettings(hf_model=str(tiny_model), hf_constrained=False)
    summarizer = build_summarizer(Settings(summarizer=cfg), "hf")
    assert isinstance(summarizer, GuardedSummarizer)
    assert isinstance(summarizer.backend, HfBackend) and not summarizer.backend.constrained
    assert SummarizerSettings().hf_constrained  # on by default


def test_lora_adapter_is_applied(tiny_model: Path, adapter: Path) -> None:
    peft = pytest.importorskip("peft")
    base, tuned = _backend(tiny_model), _backend(tiny_model, adapter)
    assert isinstance(tuned.model, peft.PeftModel)
    inputs = base.tokenizer("payments memory leak", return_tensors="pt")
    with torch.no_grad():
        plain = base.model(**inputs).logits
        adapted = tuned.model(**inputs).logits
    assert not torch.allclose(plain, adapted)


def test_factory_parses_base_and_adapter(tiny_model: Path, adapter: Path) -> None:
    summarizer = build_summarizer(Settings(), f"hf:{tiny_model}+{adapter}")
    assert isinstance(summarizer, GuardedSummarizer)
    assert isinstance(summarizer.backend, HfBackend)
    assert summarizer.backend.adapter == adapter
    assert summarizer.name == f"hf:{tiny_model}+{adapter}"
    assert summarizer.redact is not None  # hf_redact defaults to on
    plain = build_summarizer(
        Settings(summarizer=SummarizerSettings(hf_model=str(tiny_model), hf_redact=False)), "hf"
    )
    assert isinstance(plain, GuardedSummarizer) and plain.redact is None


def test_missing_models_name_the_fetch_command(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="run `rca models fetch smollm2`"):
        resolve_model("smollm2", tmp_path)
    with pytest.raises(ModelNotAvailableError, match="rca models fetch smollm2"):
        resolve_model(str(tmp_path / "nope"), tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match=r"no config\.json"):
        resolve_model(str(tmp_path / "empty"), tmp_path)
    with pytest.raises(ModelNotAvailableError, match=r"no adapter_config\.json"):
        HfBackend(str(tmp_path), adapter=tmp_path / "empty")


def test_uncached_hub_id_fails_without_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    backend = HfBackend(resolve_model("example-org/not-a-model", tmp_path), device="cpu")
    with pytest.raises(ModelNotAvailableError, match="without downloading"):
        backend.count_tokens([{"role": "user", "content": "x"}])


def _smollm2_dir() -> Path:
    return SummarizerSettings().resolved_models_dir() / ALIASES["smollm2"]


@pytest.mark.slow
@pytest.mark.skipif(
    not (_smollm2_dir() / "config.json").is_file(),
    reason="SmolLM2 is not cached: run `rca models fetch smollm2`",
)
def test_smollm2_summarizes_a_real_incident_or_falls_back() -> None:
    # short answers and one thread keep this to seconds, even on two busy cores
    cheap = SummarizerSettings(max_new_tokens=32, prompt_tokens=800, hf_threads=1)
    summarizer = build_summarizer(Settings(summarizer=cheap), "hf")
    analysis = analyze(build_snapshot(with_truth=False), summarizer=summarizer)
    assert analysis.tokens["prompt"] > 500 and analysis.tokens["completion"] > 0
    assert analysis.tokens["completion"] <= 2 * 32  # two calls at most, each capped
    assert analysis.root_cause is not None
    evidence_ids = {e.id for e in analysis.evidence}
    if analysis.summarizer_fallback is None:
        assert analysis.backend == "hf:smollm2"
        assert analysis.root_cause.service in {c.service for c in analysis.candidates}
    else:
        assert analysis.backend == "extractive"
        assert analysis.root_cause.service == analysis.candidates[0].service
    assert all(e.evidence_id in evidence_ids for e in analysis.timeline if e.evidence_id)
