"""TinyBERT data augmentation on tiny in-process BERTs: candidate sets, sampling, caching, resume, fallback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.unit.tiny_bert import NEUTRAL, POSITIVE, SPECIALS, one_thread  # noqa: F401  (autouse fixture)
from tinybert_edge.config import AugmentConfig
from tinybert_edge.data import TextClassificationData, load_data
from tinybert_edge.errors import ConfigError

# Whole words plus continuation pieces, so that some words are several pieces ("greatly" = great ##ly).
VOCAB = SPECIALS + POSITIVE + NEUTRAL + ["bad", "sad", "##ly", "##s", "##ness", "##er", "!", ",", ".", "1", "2"]
TEXTS = ["The movie was greatly good!", "sad films and books, 2 years", "this coffee is warmly kind",
         "a brave team plays", "happiness was calm ."]


def _config(layers: int = 2, hidden: int = 32):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(VOCAB), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=64, type_vocab_size=2,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _save(model, folder: Path) -> Path:
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    model.save_pretrained(folder, safe_serialization=True)
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def mlm_folder(tmp_path_factory) -> Path:
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    return _save(BertForMaskedLM(_config()).eval(), tmp_path_factory.mktemp("mlm") / "model")


@pytest.fixture(scope="module")
def encoder_folder(tmp_path_factory) -> Path:
    import torch
    from transformers import BertModel

    torch.manual_seed(1)
    return _save(BertModel(_config()).eval(), tmp_path_factory.mktemp("encoder") / "model")


def _data(texts=TEXTS) -> TextClassificationData:
    return TextClassificationData(texts=list(texts), labels=[i % 2 for i in range(len(texts))],
                                  label_names=["neg", "pos"], source="toy")


def _generators(folder: Path, **overrides):
    from tinybert_edge.distillation.augment import load_generators
    from tinybert_edge.models import load_tokenizer

    tokenizer = load_tokenizer(folder)
    return tokenizer, *load_generators(folder, tokenizer, AugmentConfig(**overrides))


def test_config_rejects_bad_values():
    for bad in ({"p_t": 1.5}, {"p_t": -0.1}, {"n_augmented": 0}, {"top_k": 0}, {"batch_size": 0},
                {"generator": "glove"}, {"max_examples": 0}, {"chunk_examples": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            AugmentConfig(**bad)


def test_words_keep_spans_and_only_alphabetic_words_are_replaceable(mlm_folder):
    from tinybert_edge.distillation.augment import split_words
    from tinybert_edge.models import load_tokenizer

    (sentence,) = split_words(load_tokenizer(mlm_folder), ["The movie was greatly good!"])
    surfaces = [sentence.text[w.start : w.end] for w in sentence.words]
    assert surfaces == ["The", "movie", "was", "greatly", "good", "!"]
    assert [len(w.piece_ids) for w in sentence.words] == [1, 1, 1, 2, 1, 1]
    assert [w.replaceable for w in sentence.words] == [True, True, True, True, True, False]


def test_mlm_head_is_detected_from_the_weights(mlm_folder, encoder_folder):
    from tinybert_edge.distillation.augment import has_masked_lm_head, weight_keys

    assert any(k.startswith("cls.predictions.") for k in weight_keys(mlm_folder))
    assert has_masked_lm_head(mlm_folder)
    assert not has_masked_lm_head(encoder_folder)


def test_mlm_candidates_exclude_the_word_special_tokens_and_pieces(mlm_folder):
    from tinybert_edge.distillation.augment import split_words

    tokenizer, masked_lm, _ = _generators(mlm_folder, top_k=7)
    sentences = split_words(tokenizer, TEXTS)
    targets = [(s, w) for s, sentence in enumerate(sentences) for w, word in enumerate(sentence.words)
               if word.replaceable and masked_lm.applies(sentence, word)]
    found = masked_lm.candidates(sentences, targets)
    assert len(found) == len(targets) > 5
    for (s, w), options in zip(targets, found):
        original = tokenizer.convert_ids_to_tokens(sentences[s].words[w].piece_ids[0])
        assert len(options) == len(set(options)) == 7
        assert original not in options
        assert not any(o in SPECIALS or o.startswith("##") or not o.isalpha() for o in options)


def _reference_mlm(model, tokenizer, text: str, start: int, end: int, top_k: int) -> list[str]:
    """One full BertForMaskedLM call for one word, built with the tokenizer's own pair encoding."""
    import torch

    masked = text[:start] + tokenizer.mask_token + text[end:]
    inputs = tokenizer(masked, text, return_tensors="pt")
    position = int((inputs["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0])
    with torch.no_grad():
        logits = model(**inputs).logits[0, position].clone()
    original = tokenizer(text[start:end], add_special_tokens=False)["input_ids"][0]
    vocab = tokenizer.convert_ids_to_tokens(list(range(logits.shape[0])))
    for i, token in enumerate(vocab):
        if i in tokenizer.all_special_ids or not token.isalpha() or i == original:
            logits[i] = float("-inf")
    return tokenizer.convert_ids_to_tokens(logits.topk(top_k).indices.tolist())


def test_batched_mlm_equals_one_call_per_word(mlm_folder):
    from transformers import BertForMaskedLM

    from tinybert_edge.distillation.augment import split_words

    tokenizer, masked_lm, _ = _generators(mlm_folder, top_k=5)
    model = BertForMaskedLM.from_pretrained(mlm_folder).eval()
    sentences = split_words(tokenizer, TEXTS)
    targets = [(s, w) for s, sentence in enumerate(sentences) for w, word in enumerate(sentence.words)
               if word.replaceable and masked_lm.applies(sentence, word)]
    batched = masked_lm.candidates(sentences, targets)  # every target of every sentence in one forward pass
    for (s, w), options in zip(targets, batched):
        word = sentences[s].words[w]
        assert options == _reference_mlm(model, tokenizer, sentences[s].text, word.start, word.end, 5)


def test_embedding_neighbours_are_whole_words_by_cosine(encoder_folder):
    import torch

    from tinybert_edge.distillation.augment import split_words

    tokenizer, masked_lm, neighbours = _generators(encoder_folder, top_k=4)
    assert masked_lm is None
    sentences = split_words(tokenizer, ["greatly good"])
    (greatly, good) = neighbours.candidates(sentences, [(0, 0), (0, 1)])
    for options in (greatly, good):
        assert len(options) == 4 and all(o.isalpha() and o not in SPECIALS for o in options)
    assert "good" not in good and "great" not in greatly
    # Reference: mean of the pieces' embeddings against every whole word, by cosine, computed row by row.
    from transformers import BertModel

    table = BertModel.from_pretrained(encoder_folder).get_input_embeddings().weight.detach()
    query = table[list(sentences[0].words[0].piece_ids)].mean(0)
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(VOCAB))))
    own = set(sentences[0].words[0].piece_ids)
    scored = sorted(((float(torch.cosine_similarity(query, table[i], dim=0)), token) for i, token in enumerate(vocab)
                     if token.isalpha() and token not in SPECIALS and i not in own), reverse=True)
    assert greatly == [token for _, token in scored[:4]]


def test_p_t_zero_gives_copies_equal_to_the_originals(encoder_folder, tmp_path):
    from tinybert_edge.distillation.augment import augment

    result = augment(encoder_folder, _data(), AugmentConfig(n_augmented=3, p_t=0.0), cache_dir=tmp_path, progress=False)
    assert len(result) == len(TEXTS) * 4
    assert result.texts == [t for t in TEXTS for _ in range(4)]


def test_labels_kept_and_words_replaced(mlm_folder, tmp_path):
    from tinybert_edge.distillation.augment import augment

    data = _data()
    result = augment(mlm_folder, data, AugmentConfig(n_augmented=5, p_t=1.0), cache_dir=tmp_path, progress=False)
    assert result.label_names == data.label_names
    assert result.labels == [y for y in data.labels for _ in range(6)]
    for i, text in enumerate(TEXTS):
        originals, copies = result.texts[i * 6], result.texts[i * 6 + 1 : i * 6 + 6]
        assert originals == text
        assert all(copy != text for copy in copies)  # p_t = 1 replaces every alphabetic word
    # Punctuation and numbers are never replaced; capitalised words stay capitalised.
    assert all(copy.endswith("!") and copy[0].isupper() for copy in result.texts[1:6])
    assert all(", 2 " in copy for copy in result.texts[7:12])


def test_same_seed_same_result_other_seed_other_result(mlm_folder, tmp_path):
    from tinybert_edge.distillation.augment import augment

    config = AugmentConfig(n_augmented=4, seed=3)
    first = augment(mlm_folder, _data(), config, cache_dir=tmp_path / "a", progress=False)
    again = augment(mlm_folder, _data(), config, cache_dir=tmp_path / "b", progress=False)
    other = augment(mlm_folder, _data(), AugmentConfig(n_augmented=4, seed=4), cache_dir=tmp_path / "c", progress=False)
    assert first.texts == again.texts
    assert first.texts != other.texts


def test_sampling_does_not_depend_on_batches_or_chunks(encoder_folder, tmp_path):
    # Embedding neighbours are exact per word; masked-LM logits may move in the last bits with the padding of a
    # batch, so this property is checked where the candidates cannot move.
    from tinybert_edge.distillation.augment import augment

    one = augment(encoder_folder, _data(), AugmentConfig(n_augmented=4), cache_dir=tmp_path / "a", progress=False)
    split = augment(encoder_folder, _data(), AugmentConfig(n_augmented=4, batch_size=2, chunk_examples=2),
                    cache_dir=tmp_path / "b", progress=False)
    assert one.texts == split.texts


def test_second_call_is_served_from_the_cache(mlm_folder, tmp_path, monkeypatch):
    from tinybert_edge.distillation import augment as module

    config = AugmentConfig(n_augmented=2)
    first = module.augment(mlm_folder, _data(), config, cache_dir=tmp_path, progress=False)
    (entry,) = (tmp_path / "augmented").iterdir()
    assert json.loads((entry / "manifest.json").read_text())["generators"] == ["mlm", "embedding"]

    def no_model(*_args, **_kwargs):
        raise AssertionError("a cached result must not load the model")

    monkeypatch.setattr(module, "load_generators", no_model)
    assert module.augment(mlm_folder, _data(), config, cache_dir=tmp_path, progress=False) == first


def test_interrupted_run_resumes_from_the_last_finished_chunk(mlm_folder, tmp_path, monkeypatch):
    from tinybert_edge.distillation import augment as module

    config = AugmentConfig(n_augmented=3, chunk_examples=2, batch_size=1)
    expected = module.augment(mlm_folder, _data(), config, cache_dir=tmp_path / "clean", progress=False)

    real = module.word_candidates
    calls: list[str] = []
    interrupt = [True]

    def failing(sentences, *args):
        calls.append(sentences[0].text)
        if interrupt[0] and len(calls) == 3:  # an example of the second chunk
            raise KeyboardInterrupt
        return real(sentences, *args)

    monkeypatch.setattr(module, "word_candidates", failing)
    with pytest.raises(KeyboardInterrupt):
        module.augment(mlm_folder, _data(), config, cache_dir=tmp_path / "run", progress=False)
    (entry,) = (tmp_path / "run" / "augmented").iterdir()
    assert sorted(p.name for p in entry.iterdir()) == ["chunk-00000.jsonl"]  # no partial chunk, no manifest

    calls.clear()
    interrupt[0] = False
    resumed = module.augment(mlm_folder, _data(), config, cache_dir=tmp_path / "run", progress=False)
    assert sorted(calls) == sorted(TEXTS[2:])  # only the unfinished chunks were computed
    assert resumed == expected


def test_without_mlm_head_embedding_works_alone_and_says_so(encoder_folder, tmp_path, caplog):
    from tinybert_edge.distillation.augment import augment

    with caplog.at_level(logging.INFO, logger="tinybert_edge"):
        result = augment(encoder_folder, _data(), AugmentConfig(n_augmented=2, p_t=1.0), cache_dir=tmp_path,
                         progress=False)
    assert f"augment: generators = embedding (no masked-LM head in {encoder_folder})" in caplog.text
    assert all(copy != TEXTS[0] for copy in result.texts[1:3])
    (entry,) = (tmp_path / "augmented").iterdir()
    assert json.loads((entry / "manifest.json").read_text())["generators"] == ["embedding"]


def test_sentence_pairs_keep_their_second_text(encoder_folder, tmp_path):
    from tinybert_edge.distillation.augment import augment

    data = TextClassificationData(texts=TEXTS[:2], labels=[0, 1], label_names=["neg", "pos"],
                                  text_pairs=["good day", "bad day"], source="pairs")
    result = augment(encoder_folder, data, AugmentConfig(n_augmented=2, p_t=1.0), cache_dir=tmp_path, progress=False)
    assert result.text_pairs == ["good day"] * 3 + ["bad day"] * 3


def test_cli_writes_jsonl_that_load_data_reads(mlm_folder, tmp_path):
    import csv

    from tinybert_edge.app.cli import main

    source = tmp_path / "train.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows([[t, "pos" if i % 2 else "neg"] for i, t in enumerate(TEXTS)])
    out = tmp_path / "augmented.jsonl"
    code = main(["augment", str(mlm_folder), "--data", str(source), "--out", str(out), "--n-augmented", "2",
                 "--p-t", "0.5", "--top-k", "3", "--cache-dir", str(tmp_path / "cache"), "--no-progress"])
    assert code == 0
    loaded = load_data(out)
    assert len(loaded) == len(TEXTS) * 3
    assert loaded.texts[0] == TEXTS[0]
    assert [loaded.label_names[y] for y in loaded.labels[:3]] == ["neg"] * 3


def test_cli_bad_value_is_one_error_line(mlm_folder, tmp_path, capsys):
    from tinybert_edge.app.cli import main

    code = main(["augment", str(mlm_folder), "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.jsonl"),
                 "--p-t", "2"])
    assert code == 2
    assert "augment.p_t = 2.0" in capsys.readouterr().err
