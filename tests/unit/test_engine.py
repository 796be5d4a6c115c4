"""The shared training loop: it learns, accumulation equals a bigger batch, resume is exact, failures are typed."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.data import EncodedData
from tinybert_edge.training.loop import LoopSpec, load_checkpoint, run_loop
from tinybert_edge.errors import DistillationError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def encoded(tmp_path_factory) -> EncodedData:
    tok = tiny_bert.tokenizer(tmp_path_factory.mktemp("tok"))
    texts, labels = tiny_bert.sentences(32, seed=7)
    ids = tok(texts, truncation=True, max_length=32, return_token_type_ids=True)
    return EncodedData(input_ids=[list(x) for x in ids["input_ids"]],
                       token_type_ids=[list(x) for x in ids["token_type_ids"]],
                       labels=np.asarray(labels, dtype=np.int64))


def _model(dropout: float = 0.0):
    return tiny_bert.classifier(seed=11, layers=2, hidden=32, heads=2, dropout=dropout)


def _classification_loss(model):
    def loss_fn(batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"], labels=batch["labels"])
        return {"cross_entropy": out.loss.detach(), "total": out.loss}

    return loss_fn


def _spec(**overrides) -> LoopSpec:
    values = dict(name="stage", epochs=2, batch_size=8, learning_rate=1e-3, warmup_ratio=0.0, seed=5, log_every=1)
    values.update(overrides)
    return LoopSpec(**values)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float, rtol: float = 0.0) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], atol=atol, rtol=rtol, msg=name)


def test_loss_decreases_on_a_learnable_problem(encoded):
    model = _model()
    result = run_loop(_spec(epochs=8, learning_rate=1e-2), model, _classification_loss(model), encoded, device=CPU,
                      progress=False)
    assert result.steps == 8 * 4
    losses = [h["total"] for h in result.history]
    assert len(losses) == result.steps
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert result.examples == 8 * 32
    assert not model.training  # the loop hands the module back in eval mode


def test_accumulation_equals_a_larger_batch(encoded):
    # Dropout off: 2 micro-batches of 4 accumulated must take the same steps as batches of 8.
    big, small = _model(), _model()
    run_loop(_spec(batch_size=8, accumulation=1), big, _classification_loss(big), encoded, device=CPU, progress=False)
    result = run_loop(_spec(batch_size=4, accumulation=2), small, _classification_loss(small), encoded, device=CPU,
                      progress=False)
    assert result.steps == 2 * 4
    assert not torch.equal(big.classifier.weight, _model().classifier.weight)  # it trained
    _assert_same_weights(big, small, atol=1e-5, rtol=1e-4)


class _Interrupt:
    """A loss function that raises KeyboardInterrupt on its `at`-th call, as Ctrl-C in the middle of a run would."""

    def __init__(self, loss_fn, at: int) -> None:
        self.loss_fn, self.at, self.calls = loss_fn, at, 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.loss_fn(batch)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_resume_follows_the_uninterrupted_path(encoded, tmp_path, accumulation):
    # Dropout on, so the restored RNG state matters; 3 epochs of 4 steps, so the data order crosses epochs.
    spec = _spec(epochs=3, batch_size=8 // accumulation, accumulation=accumulation, checkpoint_every=5)
    reference = _model(dropout=0.1)
    run_loop(spec, reference, _classification_loss(reference), encoded, device=CPU, progress=False)

    first = _model(dropout=0.1)
    interrupted = _Interrupt(_classification_loss(first), at=5 * accumulation + 1)
    with pytest.raises(KeyboardInterrupt):
        run_loop(spec, first, interrupted, encoded, device=CPU, work_dir=tmp_path, digest="abc", progress=False)
    saved = load_checkpoint(tmp_path / "stage.ckpt", "abc")
    assert saved["step"] == 5
    assert saved["totals"]["examples"] == 5 * 8 and saved["totals"]["seconds"] > 0

    # A fresh process starts from other weights: the checkpoint must bring everything back.
    resumed = tiny_bert.classifier(seed=99, layers=2, hidden=32, heads=2, dropout=0.1)
    result = run_loop(spec, resumed, _classification_loss(resumed), encoded, device=CPU, work_dir=tmp_path,
                      resume=True, digest="abc", progress=False)
    assert result.steps == 12
    # The summary covers the whole stage, the part before the checkpoint included, not only the resumed steps.
    assert [h["step"] for h in result.history] == list(range(1, 13))
    assert result.examples == 12 * 8
    assert result.seconds > saved["totals"]["seconds"]
    assert result.phase_seconds["forward"] > saved["totals"]["phase_seconds"]["forward"] > 0
    _assert_same_weights(reference, resumed, atol=1e-6)


def test_a_finished_stage_is_checkpointed_and_a_resume_does_not_train_it_again(encoded, tmp_path):
    spec = _spec(checkpoint_every=5)  # 8 steps: checkpoints at 5 and at the end
    model = _model()
    finished = run_loop(spec, model, _classification_loss(model), encoded, device=CPU, work_dir=tmp_path,
                        digest="d", progress=False)
    assert load_checkpoint(tmp_path / "stage.ckpt", "d")["step"] == 8
    again = tiny_bert.classifier(seed=99, layers=2, hidden=32, heads=2)  # other weights: the checkpoint's come back
    loss = _Interrupt(_classification_loss(again), at=1)  # any training step would raise
    result = run_loop(spec, again, loss, encoded, device=CPU, work_dir=tmp_path, resume=True, digest="d",
                      progress=False)
    assert loss.calls == 0 and result.steps == 8 and result.examples == finished.examples
    assert result.history == finished.history and result.phase_seconds == finished.phase_seconds
    _assert_same_weights(model, again, atol=0.0)


def test_resume_without_checkpoint_starts_over(encoded, tmp_path):
    a, b = _model(), _model()
    run_loop(_spec(), a, _classification_loss(a), encoded, device=CPU, progress=False)
    run_loop(_spec(), b, _classification_loss(b), encoded, device=CPU, work_dir=tmp_path, resume=True, progress=False)
    _assert_same_weights(a, b, atol=0.0)


def _checkpoint(encoded, tmp_path, digest: str = "first") -> None:
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        run_loop(_spec(checkpoint_every=2), model, _Interrupt(_classification_loss(model), at=3), encoded,
                 device=CPU, work_dir=tmp_path, digest=digest, progress=False)
    assert (tmp_path / "stage.ckpt").is_file()


def test_checkpoint_from_another_configuration_is_refused(encoded, tmp_path):
    _checkpoint(encoded, tmp_path, digest="first")
    model = _model()
    with pytest.raises(DistillationError, match="different configuration"):
        run_loop(_spec(checkpoint_every=2), model, _classification_loss(model), encoded, device=CPU,
                 work_dir=tmp_path, resume=True, digest="second", progress=False)


def test_a_checkpoint_without_recorded_costs_resumes_and_says_its_cost_is_partial(encoded, tmp_path, caplog):
    _checkpoint(encoded, tmp_path, digest="d")  # interrupted after step 2
    path = tmp_path / "stage.ckpt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    del state["totals"]  # as checkpoints written before stage costs were recorded
    torch.save(state, path)
    model = _model()
    with caplog.at_level(logging.WARNING, logger="tinybert_edge"):
        result = run_loop(_spec(checkpoint_every=2), model, _classification_loss(model), encoded, device=CPU,
                          work_dir=tmp_path, resume=True, digest="d", progress=False)
    assert not result.whole_cost and result.examples == 6 * 8  # the 6 steps trained after the resume
    assert "predates recorded stage costs" in caplog.text


def test_corrupted_checkpoint_is_a_distillation_error(encoded, tmp_path):
    _checkpoint(encoded, tmp_path)
    path = tmp_path / "stage.ckpt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model = _model()
    with pytest.raises(DistillationError) as info:
        run_loop(_spec(checkpoint_every=2), model, _classification_loss(model), encoded, device=CPU,
                 work_dir=tmp_path, resume=True, digest="first", progress=False)
    assert "unreadable" in str(info.value) and str(path) in str(info.value)


def test_non_finite_loss_names_step_and_term(encoded, tmp_path):
    model = _model()
    base = _classification_loss(model)
    calls = {"n": 0}

    def loss_fn(batch):
        calls["n"] += 1
        terms = base(batch)
        hidden = torch.tensor(float("nan") if calls["n"] == 3 else 0.5)
        return {"hidden": hidden, "cross_entropy": terms["cross_entropy"], "total": terms["total"] + hidden}

    with pytest.raises(DistillationError) as info:
        run_loop(_spec(checkpoint_every=1), model, loss_fn, encoded, device=CPU, work_dir=tmp_path, digest="d",
                 progress=False)
    message = str(info.value)
    assert "'hidden'" in message and "step 3" in message and "stage" in message
    assert str(tmp_path / "stage.ckpt") in message  # where to restart from


def test_jsonl_log_has_every_term_every_log_every_steps(encoded, tmp_path):
    model = _model()
    base = _classification_loss(model)

    def loss_fn(batch):
        terms = base(batch)
        return {"embedding": torch.tensor(1.0), "attention": torch.tensor(2.0), **terms}

    # 32 examples, batch 8, 1.5 epochs: 6 steps; logged at 2, 4, 6.
    result = run_loop(_spec(epochs=1.5, log_every=2), model, loss_fn, encoded, device=CPU, work_dir=tmp_path,
                      progress=False)
    assert result.steps == 6
    lines = [json.loads(line) for line in (tmp_path / "stage.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4, 6]
    for line in lines:
        assert {"stage", "step", "epoch", "lr", "embedding", "attention", "cross_entropy", "total"} <= set(line)
        assert line["stage"] == "stage" and line["embedding"] == pytest.approx(1.0)
        assert line["attention"] == pytest.approx(2.0)
    assert [line["epoch"] for line in lines] == [0, 0, 1]


def test_evaluate_keeps_the_best_weights(encoded):
    model = _model()
    scores = iter([0.2, 0.9, 0.1, 0.3])
    snapshots = []

    def evaluate() -> float:
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(scores)

    result = run_loop(_spec(epochs=2, eval_every=2), model, _classification_loss(model), encoded, device=CPU,
                      evaluate=evaluate, progress=False)
    assert (result.best_score, result.best_step) == (0.9, 4)
    for name, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][name]), name
