"""The attention loss needs pre-softmax scores: ScoreRecorder recomputes them from the Q and K projections."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.distillation.features import ScoreRecorder, forward_features


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    folder = tiny_bert.save_classifier(tmp_path_factory.mktemp("tiny"), seed=2, layers=3, hidden=32, heads=4)
    model = BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = tiny_bert.tokenizer(folder)
    texts, _ = tiny_bert.sentences(5, seed=4)
    encoded = tok(texts, padding=True, return_tensors="pt", return_token_type_ids=True)
    assert (encoded["attention_mask"] == 0).any()  # the batch really has padding
    return model, dict(encoded)


def test_scores_are_pre_softmax_attention(model_and_batch):
    model, batch = model_and_batch
    recorder = ScoreRecorder(model)
    with torch.no_grad():
        features = forward_features(model, recorder, batch)
        reference = model(**batch, output_attentions=True).attentions
    recorder.remove()
    assert len(features.attention_scores) == len(reference) == 3
    mask = batch["attention_mask"]
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for scores, probabilities in zip(features.attention_scores, reference):
        assert scores.shape == probabilities.shape == (5, 4, mask.shape[1], mask.shape[1])
        torch.testing.assert_close(torch.softmax(scores + additive, dim=-1), probabilities, rtol=1e-5, atol=1e-6)
        # Scores are not probabilities: unbounded and not normalised.
        assert not torch.allclose(scores.softmax(-1), scores)


def test_hidden_states_count_and_logits(model_and_batch):
    model, batch = model_and_batch
    with torch.no_grad():
        features = forward_features(model, None, batch)
        logits = model(**batch).logits
    assert len(features.hidden_states) == model.config.num_hidden_layers + 1
    assert features.attention_scores == []
    torch.testing.assert_close(features.logits, logits)


def test_recorder_follows_each_forward_and_removes_its_hooks(model_and_batch):
    model, batch = model_and_batch
    recorder = ScoreRecorder(model)
    with torch.no_grad():
        first = forward_features(model, recorder, batch).attention_scores[0]
        short = {k: v[:2, :4] for k, v in batch.items()}
        second = forward_features(model, recorder, short).attention_scores[0]
    assert first.shape[0] == 5 and second.shape[:1] == (2,) and second.shape[-1] == 4
    recorder.remove()
    assert all(not layer.query._forward_hooks and not layer.key._forward_hooks for layer in recorder.layers)


def test_scores_work_with_the_default_attention_implementation(model_and_batch):
    # distill() loads models with the default (SDPA) attention; the recorder must give the same scores there.
    eager, batch = model_and_batch
    import copy

    config = copy.deepcopy(eager.config)
    config._attn_implementation = "sdpa"
    sdpa = BertForSequenceClassification(config)
    assert sdpa.config._attn_implementation == "sdpa"
    sdpa.load_state_dict(eager.state_dict())
    sdpa.eval()
    rec_eager, rec_sdpa = ScoreRecorder(eager), ScoreRecorder(sdpa)
    with torch.no_grad():
        a = forward_features(eager, rec_eager, batch).attention_scores
        b = forward_features(sdpa, rec_sdpa, batch).attention_scores
    rec_eager.remove()
    rec_sdpa.remove()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
