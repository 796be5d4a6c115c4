"""The training loop's speed settings: length-grouped batches, the precision choice (bf16 refused where the CPU
cannot run it natively), and that a seed still fixes the run."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import DistillConfig, FinetuneConfig
from tinybert_edge.data import EncodedData
from tinybert_edge.errors import ConfigError
from tinybert_edge.training import precision as precision_module
from tinybert_edge.training.batching import length_grouped_batches, padded_tokens, shuffled_order
from tinybert_edge.training.loop import LoopSpec, _global_batches, run_loop
from tinybert_edge.training.precision import resolve_precision

CPU = torch.device("cpu")
NO_BF16 = {"fpu", "sse2", "avx2", "avx512f", "avx512bw", "avx512_vnni"}  # an AVX-512 CPU without AVX512_BF16


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> EncodedData:
    tok = tiny_bert.tokenizer(tmp_path_factory.mktemp("tok"))
    texts, labels = tiny_bert.sentences(40, seed=3)
    ids = tok(texts, truncation=True, max_length=32, return_token_type_ids=True)
    return EncodedData(input_ids=[list(x) for x in ids["input_ids"]],
                       token_type_ids=[list(x) for x in ids["token_type_ids"]],
                       labels=np.asarray(labels, dtype=np.int64))


def _lengths(n: int, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(3, 65, size=n).tolist()


@pytest.mark.parametrize("n, batch_size, group_batches", [(103, 8, 50), (103, 8, 3), (64, 32, 1), (5, 8, 50)])
def test_length_grouping_keeps_every_example_once_per_epoch(n, batch_size, group_batches):
    lengths = _lengths(n)
    for epoch in range(3):
        batches = length_grouped_batches(lengths, batch_size, seed=1, epoch=epoch, group_batches=group_batches)
        assert Counter(i for batch in batches for i in batch) == Counter(range(n))
        assert all(1 <= len(batch) <= batch_size for batch in batches)
        assert len(batches) == -(-n // batch_size)  # as many steps as a plain shuffle
        # The batch with the longest example comes first: running out of memory shows on step one.
        assert max(lengths[i] for i in batches[0]) == max(lengths)


def test_length_grouped_batches_are_length_homogeneous():
    lengths = _lengths(400, seed=2)
    batches = length_grouped_batches(lengths, 16, seed=0, epoch=0, group_batches=50)  # one group holds everything
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in batches)
    for (_, high), (low, _) in zip(spans, spans[1:]):
        assert high <= low  # batches cut from one sorted group never interleave in length
    shuffled = shuffled_order(len(lengths), seed=0, epoch=0)
    plain = [shuffled[s : s + 16] for s in range(0, len(shuffled), 16)]
    assert padded_tokens(lengths, batches) < 0.75 * padded_tokens(lengths, plain)


def test_length_grouping_orders_differ_by_epoch_and_seed_but_repeat_for_the_same_ones():
    lengths = _lengths(200)
    first = length_grouped_batches(lengths, 8, seed=4, epoch=0)
    assert first == length_grouped_batches(lengths, 8, seed=4, epoch=0)
    assert first != length_grouped_batches(lengths, 8, seed=4, epoch=1)
    assert first != length_grouped_batches(lengths, 8, seed=5, epoch=0)


def test_loop_batches_cover_the_data_once_per_epoch_with_accumulation(encoded):
    spec = LoopSpec(name="s", epochs=1, batch_size=3, learning_rate=1e-3, accumulation=2, length_grouping=True)
    batches = _global_batches(encoded, spec)
    epoch_rows: list[int] = []
    widths_ok = True
    while True:
        epoch, batch = next(batches)
        if epoch:
            break
        epoch_rows += batch["index"].tolist()
        lengths = [len(encoded.input_ids[i]) for i in batch["index"]]
        widths_ok &= batch["input_ids"].shape[1] == max(lengths)  # padded to its own longest member only
    assert sorted(epoch_rows) == list(range(len(encoded)))
    assert widths_ok


def _model(dropout: float = 0.1):
    return tiny_bert.classifier(seed=11, layers=2, hidden=32, heads=2, dropout=dropout)


def _loss(model):
    def loss_fn(batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], labels=batch["labels"])
        return {"total": out.loss}

    return loss_fn


def _train(encoded, dropout: float = 0.1, **spec):
    model = _model(dropout)
    values = dict(name="s", epochs=2, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, seed=5, log_every=3,
                  length_grouping=True)
    result = run_loop(LoopSpec(**{**values, **spec}), model, _loss(model), encoded, device=CPU, progress=False)
    return model, result


def test_same_seed_gives_the_same_weights_with_length_grouping(encoded):
    (a, first), (b, _), (c, _) = _train(encoded), _train(encoded), _train(encoded, seed=6)
    for name, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[name]), name
    assert any(not torch.equal(v, c.state_dict()[n]) for n, v in a.state_dict().items())
    assert first.precision == "fp32" and first.examples == 2 * len(encoded)


def test_the_loop_says_where_its_time_went_on_a_cpu(encoded):
    _, result = _train(encoded, accumulation=2)
    phases = result.phase_seconds
    assert set(phases) == {"data", "forward", "backward", "optimizer"} and all(v > 0 for v in phases.values())
    # the phases are parts of the loop's time (logging, checks and the progress bar make up the rest)
    assert sum(phases.values()) <= result.seconds


def test_length_grouped_accumulation_equals_a_larger_batch(encoded):
    big, _ = _train(encoded, dropout=0.0, batch_size=8, accumulation=1)  # no dropout: the masks would differ
    small, _ = _train(encoded, dropout=0.0, batch_size=4, accumulation=2)
    for name, value in big.state_dict().items():
        torch.testing.assert_close(value, small.state_dict()[name], atol=2e-5, rtol=0, msg=name)


def test_bf16_is_refused_on_a_cpu_without_native_bf16_naming_the_reason(monkeypatch):
    with pytest.raises(ConfigError) as info:
        resolve_precision("bf16", CPU, flags=NO_BF16)
    message = str(info.value)
    assert "AVX512_BF16" in message and "avx512_vnni" in message and "'fp32'" in message
    auto = resolve_precision("auto", CPU, flags=NO_BF16)
    assert auto.name == "fp32" and auto.dtype is None and "lacks AVX512_BF16" in auto.reason
    with pytest.raises(ConfigError, match="fp16"):
        resolve_precision("fp16", CPU, flags=NO_BF16 | {"avx512_bf16"})
    assert precision_module.cpu_flags("/nonexistent/cpuinfo") is None
    monkeypatch.setattr(precision_module, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": None)  # no /proc/cpuinfo
    with pytest.raises(ConfigError, match="cannot be read"):
        resolve_precision("bf16", CPU)


def test_bf16_is_refused_by_the_loop_before_training(monkeypatch, encoded):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": set(NO_BF16))
    model = _model()
    before = {n: v.clone() for n, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match="refused on this CPU"):
        run_loop(LoopSpec(name="s", epochs=1, batch_size=8, learning_rate=1e-3, precision="bf16"), model, _loss(model),
                 encoded, device=CPU, progress=False)
    assert all(torch.equal(v, before[n]) for n, v in model.state_dict().items())


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_bf16_is_chosen_where_the_cpu_has_it(flag):
    for asked in ("bf16", "auto"):
        chosen = resolve_precision(asked, CPU, flags=NO_BF16 | {flag})
        assert chosen.name == "bf16" and chosen.dtype == torch.bfloat16 and flag in chosen.reason
        assert not chosen.loss_scaling


def test_bf16_loop_trains_under_autocast(monkeypatch, encoded):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": NO_BF16 | {"avx512_bf16"})
    seen = []
    model = _model()

    def loss_fn(batch):
        seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return _loss(model)(batch)

    result = run_loop(LoopSpec(name="s", epochs=1, batch_size=8, learning_rate=1e-3, precision="bf16"), model, loss_fn,
                      encoded, device=CPU, progress=False)
    assert result.precision == "bf16" and set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_configs_check_the_speed_settings():
    with pytest.raises(ConfigError, match="precision"):
        FinetuneConfig(precision="int8")
    with pytest.raises(ConfigError, match="precision"):
        DistillConfig(precision="half")
    with pytest.raises(ConfigError, match="length_grouping"):
        DistillConfig(length_grouping="yes")
    assert FinetuneConfig().length_grouping and DistillConfig().length_grouping


def test_finetune_refuses_bf16_before_loading_the_encoder(monkeypatch, tmp_path):
    from tinybert_edge.training.finetune import finetune

    monkeypatch.setattr(precision_module, "cpu_flags", lambda cpuinfo="/proc/cpuinfo": set(NO_BF16))
    encoder = tiny_bert.save_encoder(tmp_path / "encoder")
    with pytest.raises(ConfigError, match="AVX512_BF16"):
        finetune(encoder, tiny_bert.text_data(8), tiny_bert.text_data(4, seed=1),
                 FinetuneConfig(precision="bf16", max_length=16), cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists()


def test_cli_flags_reach_the_configs():
    from tinybert_edge.app.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["finetune", "enc", "--data", "d.tsv", "--precision", "auto", "--no-length-grouping"])
    assert args.precision == "auto" and args.length_grouping is False
    args = parser.parse_args(["distill", "t", "s", "--data", "d.tsv"])
    assert args.precision is None and args.length_grouping is None  # unset: the config's defaults apply


def test_attention_loss_is_summed_in_fp32_under_bf16_autocast():
    from tinybert_edge.distillation.losses import attention_loss

    generator = torch.Generator().manual_seed(0)
    student, teacher = (torch.randn(2, 2, 24, 24, generator=generator) for _ in range(2))
    mask = torch.ones(2, 24, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attention_loss(student.bfloat16(), teacher.bfloat16(), mask)
    assert low.dtype == torch.float32
    reference = attention_loss(student.bfloat16().float(), teacher.bfloat16().float(), mask)
    torch.testing.assert_close(low, reference, rtol=1e-6, atol=0)
