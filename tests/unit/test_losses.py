"""Golden values for the TinyBERT loss terms, worked out by hand or with plain-Python loops (never torch's own MSE)."""

from __future__ import annotations

import math

import pytest
import torch

from tinybert_edge.distillation.losses import (
    attention_loss,
    embedding_loss,
    hard_label_loss,
    hidden_loss,
    prediction_loss,
    regression_prediction_loss,
)


def flat(values):
    if isinstance(values, (list, tuple)):
        return [x for v in values for x in flat(v)]
    return [float(values)]


def python_mse(a, b) -> float:
    xs, ys = flat(a), flat(b)
    assert len(xs) == len(ys)
    return sum((x - y) ** 2 for x, y in zip(xs, ys)) / len(xs)


def python_log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_total = top + math.log(sum(math.exp(x - top) for x in row))
    return [x - log_total for x in row]


def fixed_linear(weight: list[list[float]], bias: list[float]) -> torch.nn.Linear:
    layer = torch.nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


# ---------------------------------------------------------------- embedding and hidden


@pytest.mark.parametrize("loss", [embedding_loss, hidden_loss])
def test_mse_terms_without_projection(loss):
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    teacher = torch.tensor([[[0.0, 2.0], [5.0, 1.0]]])
    # differences 1, 0, -2, 3 -> squares 1, 0, 4, 9 -> 14 / 4 entries
    assert loss(student, teacher).item() == pytest.approx(3.5)


@pytest.mark.parametrize("loss", [embedding_loss, hidden_loss])
def test_mse_terms_with_projection(loss):
    # W maps width 2 -> 3: rows (1, 0), (0, 1), (1, 1); bias (0, 0, 1)
    projection = fixed_linear([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 1.0])
    student = torch.tensor([[[1.0, 2.0], [3.0, -1.0]]])
    teacher = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]])
    # projected student: (1, 2, 1+2+1=4) and (3, -1, 3-1+1=3)
    # differences: (0, 1, 3) and (3, -1, 3) -> squares 0+1+9+9+1+9 = 29 over 6 entries (mean over teacher width)
    value = loss(student, teacher, projection)
    assert value.item() == pytest.approx(29 / 6)
    value.backward()
    assert projection.weight.grad is not None and projection.weight.grad.abs().sum() > 0


def test_hidden_loss_batch_matches_python_loops():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 4)
    teacher = torch.randn(2, 3, 6)
    projection = torch.nn.Linear(4, 6)
    projected = projection(student).tolist()
    # the projection by hand too, so only the MSE is under test here and above
    w, b = projection.weight.tolist(), projection.bias.tolist()
    by_hand = [[[sum(w[o][i] * s[i] for i in range(4)) + b[o] for o in range(6)] for s in seq] for seq in student.tolist()]
    assert python_mse(by_hand, projected) < 1e-10
    assert hidden_loss(student, teacher, projection).item() == pytest.approx(python_mse(by_hand, teacher.tolist()), rel=1e-5)


def test_identical_states_give_zero():
    x = torch.randn(2, 3, 4)
    assert embedding_loss(x, x.clone()).item() == 0.0
    assert hidden_loss(x, x.clone()).item() == 0.0


# ---------------------------------------------------------------- attention


def python_attention_loss(student, teacher, mask) -> float:
    total, count = 0.0, 0
    for b, heads in enumerate(student):
        for h, rows in enumerate(heads):
            for q, row in enumerate(rows):
                for k, value in enumerate(row):
                    if mask[b][q] and mask[b][k]:
                        total += (value - teacher[b][h][q][k]) ** 2
                        count += 1
    return total / count


def test_attention_loss_tiny_literal():
    # one head, two positions, the second is padding: only the (0, 0) score counts: (3 - 1)^2 = 4
    student = torch.tensor([[[[3.0, 100.0], [-7.0, 2.0]]]])
    teacher = torch.tensor([[[[1.0, -5.0], [0.0, 9.0]]]])
    mask = torch.tensor([[1, 0]])
    assert attention_loss(student, teacher, mask).item() == pytest.approx(4.0)


def test_attention_loss_two_heads_literal():
    # batch 1, 2 heads, 2 tokens, no padding.
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    teacher = torch.tensor([[[[1.0, 0.0], [3.0, 5.0]], [[2.0, 0.0], [0.0, 0.0]]]])
    mask = torch.ones(1, 2, dtype=torch.long)
    # head 1: squares 0, 4, 0, 1 -> MSE 5/4; head 2: squares 4, 0, 0, 0 -> MSE 1; (1/h) * (5/4 + 1) = 9/8
    assert attention_loss(student, teacher, mask).item() == pytest.approx(9 / 8)


def test_attention_loss_matches_loops_and_per_head_mean():
    torch.manual_seed(1)
    student = torch.randn(2, 3, 4, 4)
    teacher = torch.randn(2, 3, 4, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    value = attention_loss(student, teacher, mask).item()
    assert value == pytest.approx(python_attention_loss(student.tolist(), teacher.tolist(), mask.tolist()), rel=1e-6)

    # eq. 7: (1/h) sum_i MSE_i, each head's MSE over the valid (query, key) pairs of the whole batch
    per_head = []
    for h in range(3):
        s = student[:, h : h + 1].tolist()
        t = teacher[:, h : h + 1].tolist()
        per_head.append(python_attention_loss(s, t, mask.tolist()))
    assert value == pytest.approx(sum(per_head) / 3, rel=1e-6)


@pytest.mark.parametrize("padding_score", [-1e4, 1e9, float(torch.finfo(torch.float32).min), float("-inf")])
def test_attention_padding_never_contributes(padding_score):
    torch.manual_seed(2)
    student = torch.randn(2, 2, 3, 3)
    teacher = torch.randn(2, 2, 3, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    reference = attention_loss(student, teacher, mask)

    # padded key column and padded query row of example 1, in both student and teacher (as an additive mask would)
    s2, t2 = student.clone(), teacher.clone()
    s2[1, :, :, 2] = padding_score
    t2[1, :, :, 2] = padding_score
    s2[1, :, 2, :] = -padding_score if math.isfinite(padding_score) else 123.0
    t2[1, :, 2, :] = 7.0
    changed = attention_loss(s2, t2, mask)
    assert torch.isfinite(changed)
    assert changed.item() == pytest.approx(reference.item(), rel=1e-6)


@pytest.mark.parametrize("padding_score", [float(torch.finfo(torch.float32).min), float("-inf")])
def test_attention_padding_gets_no_gradient(padding_score):
    torch.manual_seed(3)
    teacher = torch.randn(1, 2, 3, 3)
    teacher[:, :, :, 2] = padding_score
    student = torch.randn(1, 2, 3, 3)
    student[:, :, :, 2] = padding_score
    student[:, :, 2, :2] = 1e30  # a padded query row with huge scores
    student.requires_grad_(True)
    mask = torch.tensor([[1, 1, 0]])
    attention_loss(student, teacher, mask).backward()
    grad = student.grad
    assert torch.isfinite(grad).all()
    assert grad[..., 2].abs().sum() == 0 and grad[..., 2, :].abs().sum() == 0
    assert grad[..., :2, :2].abs().sum() > 0


def test_attention_shape_mismatch():
    with pytest.raises(ValueError, match="differ in shape"):
        attention_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 4, 3, 3), torch.ones(1, 3))


# ---------------------------------------------------------------- prediction


def test_prediction_loss_t1_literal():
    # teacher (0, 0) -> p = (1/2, 1/2); student (0, ln 3) -> q = (1/4, 3/4)
    # loss = -(1/2 ln 1/4 + 1/2 ln 3/4) = 0.8369882167858358
    student = torch.tensor([[0.0, math.log(3.0)]])
    teacher = torch.tensor([[0.0, 0.0]])
    assert prediction_loss(student, teacher, temperature=1.0).item() == pytest.approx(0.8369882167858358, rel=1e-6)


def test_prediction_loss_t2_literal():
    # both logits divided by T = 2: teacher (0, 2 ln 3) -> (0, ln 3) -> p = (1/4, 3/4); student (0, 0) -> q = (1/2, 1/2)
    # loss = -(1/4 ln 1/2 + 3/4 ln 1/2) = ln 2, with no T^2 factor (TinyBERT's soft_cross_entropy)
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[0.0, 2 * math.log(3.0)]])
    assert prediction_loss(student, teacher, temperature=2.0).item() == pytest.approx(math.log(2.0), rel=1e-6)
    # at T = 1 the same logits give -(1/10 ln 1/2 + 9/10 ln 1/2) = ln 2 as well; use other student logits to tell T apart
    student = torch.tensor([[0.0, 2.0]])
    t1 = prediction_loss(student, teacher, temperature=1.0).item()
    t2 = prediction_loss(student, teacher, temperature=2.0).item()
    p1 = [0.1, 0.9]
    p2 = [0.25, 0.75]
    assert t1 == pytest.approx(-sum(p * q for p, q in zip(p1, python_log_softmax([0.0, 2.0]))), rel=1e-6)
    assert t2 == pytest.approx(-sum(p * q for p, q in zip(p2, python_log_softmax([0.0, 1.0]))), rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_prediction_loss_batch_matches_python(temperature):
    student = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    teacher = [[2.0, 0.0, -1.0], [-0.5, 0.5, 4.0]]
    expected = 0.0
    for s_row, t_row in zip(student, teacher):
        p = [math.exp(x) for x in python_log_softmax([x / temperature for x in t_row])]
        log_q = python_log_softmax([x / temperature for x in s_row])
        expected += -sum(pi * lq for pi, lq in zip(p, log_q))
    expected /= len(student)  # mean over the batch
    got = prediction_loss(torch.tensor(student), torch.tensor(teacher), temperature=temperature).item()
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_prediction_loss_equals_teacher_entropy_when_logits_match(temperature):
    logits = [[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]]
    entropy = 0.0
    for row in logits:
        p = [math.exp(x) for x in python_log_softmax([x / temperature for x in row])]
        entropy += -sum(pi * math.log(pi) for pi in p)
    entropy /= 2
    got = prediction_loss(torch.tensor(logits), torch.tensor(logits), temperature=temperature).item()
    assert got == pytest.approx(entropy, rel=1e-6)
    # cross-entropy is smallest when the student matches the teacher
    other = prediction_loss(torch.tensor([[3.0, 2.0, 1.0], [5.0, 0.0, 0.0]]), torch.tensor(logits), temperature).item()
    assert other > got


def test_regression_prediction_loss():
    # (1 - 0)^2 and (3 - 1)^2 -> (1 + 4) / 2
    student = torch.tensor([[1.0], [3.0]])
    teacher = torch.tensor([[0.0], [1.0]])
    assert regression_prediction_loss(student, teacher).item() == pytest.approx(2.5)


def test_hard_label_loss():
    # row 0: logits (0, ln 3), label 1 -> -ln(3/4); row 1: logits (ln 2, 0), label 0 -> -ln(2/3)
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), 0.0]])
    labels = torch.tensor([1, 0])
    expected = (-math.log(3 / 4) - math.log(2 / 3)) / 2
    assert hard_label_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------- MiniLM relations


def _projections(values):
    x = torch.tensor(values, dtype=torch.float32)
    return {"query": x, "key": x.clone(), "value": x.clone()}


def test_relation_loss_golden_value():
    from tinybert_edge.distillation.losses import relation_loss

    # One head of width 1, two tokens. Teacher x = (1, 0): relation row 0 = softmax(1, 0) = (p, 1 - p) with
    # p = e / (1 + e), row 1 = softmax(0, 0) = (1/2, 1/2). Student x = (0, 0): both rows (1/2, 1/2).
    # KL(row 0) = p ln(2p) + (1 - p) ln(2(1 - p)), KL(row 1) = 0; mean over 2 queries, summed over Q, K and V.
    p = math.e / (1 + math.e)
    kl_row0 = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    teacher = _projections([[[1.0], [0.0]]])
    student = _projections([[[0.0], [0.0]]])
    mask = torch.tensor([[1, 1]])
    assert relation_loss(student, teacher, mask, heads=1).item() == pytest.approx(3 * kl_row0 / 2, rel=1e-5)


def test_relation_loss_ignores_padding_and_allows_different_widths():
    from tinybert_edge.distillation.losses import relation_loss

    p = math.e / (1 + math.e)
    kl_row0 = p * math.log(2 * p) + (1 - p) * math.log(2 * (1 - p))
    # A third, padded position with large values changes nothing.
    teacher = _projections([[[1.0], [0.0], [50.0]]])
    student = _projections([[[0.0], [0.0], [-70.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert relation_loss(student, teacher, mask, heads=1).item() == pytest.approx(3 * kl_row0 / 2, rel=1e-5)
    # Widths 4 and 6 split into 2 relation heads each: any width works as long as the head count divides it.
    torch.manual_seed(0)
    s = {k: torch.randn(2, 5, 4) for k in ("query", "key", "value")}
    t = {k: torch.randn(2, 5, 6) for k in ("query", "key", "value")}
    loss = relation_loss(s, t, torch.ones(2, 5, dtype=torch.long), heads=2)
    assert loss.item() > 0 and torch.isfinite(loss)
    assert relation_loss(t, t, torch.ones(2, 5, dtype=torch.long), heads=2).item() == pytest.approx(0.0, abs=1e-6)
