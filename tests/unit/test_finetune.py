"""Teacher fine-tuning is a function of its cache key: the same encoder, data and settings give the same teacher."""

from __future__ import annotations

import pytest

import tiny_bert
from tiny_bert import one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import FinetuneConfig


@pytest.fixture
def encoder(tmp_path):
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    folder = tmp_path / "encoder"
    BertModel(tiny_bert.bert_config(), add_pooling_layer=True).save_pretrained(folder, safe_serialization=True)
    tiny_bert.tokenizer(folder).save_pretrained(folder)
    return folder


def test_the_same_inputs_give_the_same_teacher_whatever_the_global_generator(encoder, tmp_path):
    import torch
    from safetensors.torch import load_file

    from tinybert_edge.training.finetune import finetune

    train, dev = tiny_bert.text_data(24, seed=1), tiny_bert.text_data(8, seed=2)
    config = FinetuneConfig(epochs=1, batch_size=8, max_length=16)
    folders = []
    for index, seed in enumerate((123, 456)):  # what ran before fine-tuning left the generator anywhere
        torch.manual_seed(seed)
        folders.append(finetune(encoder, train, dev, config, cache_dir=tmp_path / f"cache{index}", progress=False))
    first, second = (load_file(folder / "model.safetensors") for folder in folders)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
