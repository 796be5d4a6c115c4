"""Reading labelled text: every format, label order, splits, batches, and the errors a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinybert_edge.data import (
    DataSpec,
    EncodedData,
    TextClassificationData,
    load_data,
    sample,
    split_data,
)
from tinybert_edge.errors import DataError, TinyBertEdgeError
from tinybert_edge.io import resolve_path

SST2_DEV_CANDIDATES = (
    Path("/work/shared/data/sst2/dev.tsv"),
    Path(__file__).resolve().parents[2].parent / "shared/data/sst2/dev.tsv",
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


# ---------------------------------------------------------------- GLUE TSV


GLUE_SENTENCES = [
    'it \'s a "bold" film , and it never lets go',
    "the director 's \"vision\" is a mess",
    '"',
    "a film that does n't know what it wants to be",
    "unflinchingly bleak and desperate \"",
]
GLUE_LABELS = [1, 0, 1, 0, 0]


def glue_tsv(tmp_path: Path) -> Path:
    lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in zip(GLUE_SENTENCES, GLUE_LABELS)]
    return write(tmp_path / "dev.tsv", "\n".join(lines) + "\n")


def test_glue_tsv_read_unchanged(tmp_path):
    data = load_data(glue_tsv(tmp_path))
    assert data.texts == GLUE_SENTENCES  # bare quotes and apostrophes kept verbatim
    assert data.label_names == ["0", "1"]
    assert data.labels == GLUE_LABELS
    assert data.text_pairs is None
    assert len(data) == 5 and data.num_labels == 2
    assert data.source.endswith("dev.tsv")


def test_glue_tsv_accepts_spec_and_pathlike(tmp_path):
    path = glue_tsv(tmp_path)
    assert load_data(DataSpec(path=str(path))).texts == load_data(str(path)).texts == GLUE_SENTENCES


def test_real_sst2_dev_when_present():
    path = next((p for p in SST2_DEV_CANDIDATES if p.exists()), None)
    if path is None:
        pytest.skip("GLUE SST-2 dev.tsv is not available in this checkout")
    data = load_data(path)
    assert len(data) == 872
    assert data.label_names == ["0", "1"]
    assert data.labels.count(0) == 428
    assert data.labels.count(1) == 444


def test_tsv_row_with_wrong_field_count(tmp_path):
    path = write(tmp_path / "bad.tsv", "sentence\tlabel\ngood row\t1\nan extra\ttab\t0\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "bad.tsv:3" in message  # the line number of the bad row
    assert "3 tab-separated fields" in message and "header has 2" in message
    assert "fix the row" in message


# ---------------------------------------------------------------- CSV, JSONL, pairs


def test_csv_with_named_columns(tmp_path):
    path = write(
        tmp_path / "reviews.csv",
        'id,review,stars\n1,"great, really ""great""",pos\n2,awful,neg\n3,fine,pos\n',
    )
    data = load_data(DataSpec(path=str(path), text_column="review", label_column="stars"))
    assert data.texts == ['great, really "great"', "awful", "fine"]
    assert data.label_names == ["neg", "pos"]
    assert data.labels == [1, 0, 1]


def test_jsonl_with_named_columns(tmp_path):
    rows = [{"body": "first", "y": "b"}, {"body": "second", "y": "a"}, {"body": "third", "y": "c"}]
    path = write(tmp_path / "d.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    data = load_data(DataSpec(path=str(path), text_column="body", label_column="y"))
    assert data.texts == ["first", "second", "third"]
    assert data.label_names == ["a", "b", "c"]
    assert data.labels == [1, 0, 2]


def test_guessed_columns_and_empty_texts_dropped(tmp_path):
    path = write(tmp_path / "d.csv", "text,sentiment\nhello,1\n   ,0\nbye,0\n")
    data = load_data(path)
    assert data.texts == ["hello", "bye"]
    assert data.labels == [1, 0]


def test_text_pairs_from_glue_headers(tmp_path):
    path = write(
        tmp_path / "mrpc.tsv",
        "sentence1\tsentence2\tlabel\nA cat sat .\tA cat was sitting .\t1\nIt rained .\tThe sun shone .\t0\n",
    )
    data = load_data(path)
    assert data.texts == ["A cat sat .", "It rained ."]
    assert data.text_pairs == ["A cat was sitting .", "The sun shone ."]
    assert data.labels == [1, 0]


def test_text_pairs_with_explicit_columns(tmp_path):
    path = write(tmp_path / "qa.csv", "q,ctx,label\nwho?,Ann did.,yes\nwhen?,never.,no\n")
    data = load_data(DataSpec(path=str(path), text_column="q", text_pair_column="ctx"))
    assert data.texts == ["who?", "when?"]
    assert data.text_pairs == ["Ann did.", "never."]
    assert data.label_names == ["no", "yes"]


def test_explicit_text_pair_column_with_guessed_text_column(tmp_path):
    path = write(tmp_path / "qa.csv", "text,context,label\nwho?,Ann did.,1\nwhen?,never.,0\n")
    data = load_data(DataSpec(path=str(path), text_pair_column="context"))
    assert data.texts == ["who?", "when?"]
    assert data.text_pairs == ["Ann did.", "never."]


def test_explicit_text_pair_column_missing(tmp_path):
    path = write(tmp_path / "qa.csv", "text,context,label\nwho?,Ann did.,1\n")
    with pytest.raises(DataError, match="no column 'ctx'"):
        load_data(DataSpec(path=str(path), text_column="text", text_pair_column="ctx"))


# ---------------------------------------------------------------- Hugging Face datasets on disk


def test_hf_dataset_with_class_label(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    ds = datasets.Dataset.from_dict({"sentence": ["bad", "good", "great"], "label": [0, 1, 1]}, features=features)
    ds.save_to_disk(str(tmp_path / "ds"))
    data = load_data(tmp_path / "ds")
    assert data.texts == ["bad", "good", "great"]
    assert data.label_names == ["negative", "positive"]  # by name, not "0"/"1"
    assert data.labels == [0, 1, 1]


def test_hf_class_label_minus_one_is_not_a_label(tmp_path):
    # GLUE test splits store label -1 ("no label"); it must not silently become the last class name.
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])}
    )
    ds = datasets.Dataset.from_dict({"sentence": ["a", "b"], "label": [-1, -1]}, features=features)
    ds.save_to_disk(str(tmp_path / "test_split"))
    with pytest.raises(DataError, match="no value in the label column"):
        load_data(tmp_path / "test_split")


def test_hf_dataset_dict_split_selection(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["t1", "t2"], "label": [0, 1]}),
            "validation": datasets.Dataset.from_dict({"text": ["v1", "v2", "v3"], "label": [1, 1, 0]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_data(DataSpec(path=str(tmp_path / "dd"))).texts == ["t1", "t2"]
    val = load_data(DataSpec(path=str(tmp_path / "dd"), split="validation"))
    assert val.texts == ["v1", "v2", "v3"]
    assert val.labels == [1, 1, 0]
    with pytest.raises(DataError) as info:
        load_data(DataSpec(path=str(tmp_path / "dd"), split="test"))
    assert "no split 'test'" in str(info.value)
    assert "train" in str(info.value) and "validation" in str(info.value)
    assert "--split" in str(info.value)


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    pytest.importorskip("datasets")
    (tmp_path / "notads").mkdir()
    (tmp_path / "notads" / "readme.md").write_text("hi")
    with pytest.raises(DataError, match="save_to_disk"):
        load_data(tmp_path / "notads")


# ---------------------------------------------------------------- label names


def test_numeric_labels_sorted_numerically(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,10\nb,2\nc,1\nd,-1\ne,2\n")
    data = load_data(path)
    assert data.label_names == ["-1", "1", "2", "10"]  # not the string order "-1","1","10","2"
    assert data.labels == [3, 2, 1, 0, 2]


def test_string_labels_sorted_alphabetically(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,positive\nb,negative\nc,neutral\n")
    data = load_data(path)
    assert data.label_names == ["negative", "neutral", "positive"]
    assert [data.label_names[y] for y in data.labels] == ["positive", "negative", "neutral"]


def test_explicit_label_names_fix_the_order(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,pos\nb,neg\n")
    data = load_data(DataSpec(path=str(path), label_names=("pos", "neg", "mixed")))
    assert data.label_names == ["pos", "neg", "mixed"]
    assert data.labels == [0, 1]


def test_explicit_label_names_with_unknown_label(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,pos\nb,neg\nc,meh\n")
    with pytest.raises(DataError) as info:
        load_data(DataSpec(path=str(path), label_names=("neg", "pos")))
    assert "unknown labels ['meh']" in str(info.value)
    assert "'neg', 'pos'" in str(info.value)


def test_with_label_names_reindexes():
    data = TextClassificationData(texts=["a", "b", "c"], labels=[0, 1, 1], label_names=["neg", "pos"], source="s")
    model_order = data.with_label_names(["pos", "neutral", "neg"])
    assert model_order.label_names == ["pos", "neutral", "neg"]
    assert model_order.labels == [2, 0, 0]
    assert model_order.texts == data.texts
    # the names each example carries are unchanged
    assert [model_order.label_names[y] for y in model_order.labels] == [data.label_names[y] for y in data.labels]


def test_with_label_names_missing_label():
    data = TextClassificationData(texts=["a", "b"], labels=[0, 1], label_names=["neg", "pos"], source="s")
    with pytest.raises(DataError) as info:
        data.with_label_names(["LABEL_0", "pos"])
    assert "['neg']" in str(info.value)
    assert "model's labels" in str(info.value)


def test_mismatched_lengths_rejected():
    with pytest.raises(DataError, match="3 texts but 2 labels"):
        TextClassificationData(texts=["a", "b", "c"], labels=[0, 1], label_names=["0", "1"])
    with pytest.raises(DataError, match="second texts"):
        TextClassificationData(texts=["a"], labels=[0], label_names=["0"], text_pairs=["x", "y"])


# ---------------------------------------------------------------- bad input


def test_missing_path(tmp_path):
    with pytest.raises(DataError) as info:
        load_data(tmp_path / "nowhere" / "train.tsv")
    assert "does not exist" in str(info.value)
    assert "--data" in str(info.value)


def test_misspelled_path_lists_files_there(tmp_path):
    glue_tsv(tmp_path)
    write(tmp_path / "train.tsv", "sentence\tlabel\nx\t1\n")
    (tmp_path / "notes.txt").write_text("not data")
    with pytest.raises(DataError) as info:
        load_data(tmp_path / "trian.tsv")
    message = str(info.value)
    assert "does not exist" in message
    assert "dev.tsv" in message and "train.tsv" in message
    assert "notes.txt" not in message


def test_missing_label_column(tmp_path):
    path = write(tmp_path / "d.csv", "text,score\nhello,1\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    assert "no label column" in str(info.value)
    assert "'score'" in str(info.value)  # lists the columns it has
    assert "--label-column" in str(info.value)
    with pytest.raises(DataError, match="no label column 'stars'.*--label-column"):
        load_data(DataSpec(path=str(path), label_column="stars"))


def test_missing_text_column(tmp_path):
    path = write(tmp_path / "d.csv", "body,label\nhello,1\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    assert "cannot find the text column" in str(info.value)
    assert "'body'" in str(info.value)
    assert "--text-column" in str(info.value)
    with pytest.raises(DataError, match="no column 'review'.*--text-column"):
        load_data(DataSpec(path=str(path), text_column="review"))


@pytest.mark.parametrize(
    "name, content",
    [("d.tsv", "sentence\tlabel\n"), ("d.csv", "text,label\n"), ("d.jsonl", "\n\n"), ("e.tsv", "")],
)
def test_empty_file(tmp_path, name, content):
    with pytest.raises(DataError) as info:
        load_data(write(tmp_path / name, content))
    assert "empty" in str(info.value)
    assert "--data" in str(info.value)


def test_unknown_extension(tmp_path):
    path = write(tmp_path / "d.txt", "text,label\na,1\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "'.txt'" in message and "--format" in message
    for fmt in ("csv", "tsv", "jsonl", "hf-disk"):
        assert fmt in message
    # naming the format explicitly reads the same file
    assert load_data(DataSpec(path=str(path), format="csv")).texts == ["a"]


def test_unknown_explicit_format(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,1\n")
    with pytest.raises(TinyBertEdgeError, match="available: csv, hf-disk, jsonl, tsv"):
        load_data(DataSpec(path=str(path), format="xml"))


def test_malformed_jsonl_line(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "ok", "label": 1}\n{"text": "broken", "label": \n')
    with pytest.raises(DataError) as info:
        load_data(path)
    assert "d.jsonl:2" in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert "one JSON object" in str(info.value)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "ok", "label": 1}\n["text", 1]\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: a JSON list, not an object"):
        load_data(path)


def test_row_without_label_value(tmp_path):
    path = write(tmp_path / "d.csv", "text,label\na,1\nb,\n")
    with pytest.raises(DataError, match="no value in the label column 'label'"):
        load_data(path)


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin.tsv"
    path.write_bytes("sentence\tlabel\ncaf".encode() + b"\xe9 cr\xe8me\t1\nplain\t0\n")
    with pytest.raises(DataError) as info:
        load_data(path)
    message = str(info.value)
    assert "utf-8" in message
    assert "--encoding" in message and "encoding_errors" in message

    replaced = load_data(DataSpec(path=str(path), encoding_errors="replace"))
    assert replaced.texts == ["caf\ufffd cr\ufffdme", "plain"]
    assert replaced.labels == [1, 0]

    latin = load_data(DataSpec(path=str(path), encoding="latin-1"))
    assert latin.texts[0] == "café crème"


@pytest.mark.parametrize("suffix, head", [(".csv", "text,label\n"), (".jsonl", "")])
def test_non_utf8_bytes_other_formats(tmp_path, suffix, head):
    path = tmp_path / f"d{suffix}"
    body = b'{"text": "caf\xe9", "label": 1}\n' if suffix == ".jsonl" else b"caf\xe9,1\n"
    path.write_bytes(head.encode() + body)
    with pytest.raises(DataError, match="encoding_errors"):
        load_data(path)
    assert load_data(DataSpec(path=str(path), encoding_errors="replace")).texts == ["caf\ufffd"]


# ---------------------------------------------------------------- splits and sampling


def balanced(n_per_label: int = 40, labels: int = 3) -> TextClassificationData:
    texts, ys = [], []
    for i in range(n_per_label * labels):
        texts.append(f"text {i}")
        ys.append(i % labels)
    return TextClassificationData(texts=texts, labels=ys, label_names=[str(k) for k in range(labels)], source="mem")


def test_split_deterministic_for_a_seed():
    data = balanced()
    first = split_data(data, seed=7)
    again = split_data(data, seed=7)
    other = split_data(data, seed=8)
    assert [p.texts for p in first] == [p.texts for p in again]
    assert [p.texts for p in first] != [p.texts for p in other]


def test_split_stratified_disjoint_and_covering():
    data = balanced(n_per_label=40, labels=3)
    train, dev, test = split_data(data, fractions=(0.8, 0.1, 0.1), seed=0)
    for part in (train, dev, test):
        assert set(part.labels) == {0, 1, 2}
        assert part.label_names == data.label_names
    assert (len(train), len(dev), len(test)) == (96, 12, 12)
    seen = [set(p.texts) for p in (train, dev, test)]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert seen[0] | seen[1] | seen[2] == set(data.texts)
    # labels still belong to their texts
    truth = dict(zip(data.texts, data.labels))
    for part in (train, dev, test):
        assert all(truth[t] == y for t, y in zip(part.texts, part.labels))
    assert train.source == "mem[train]" and dev.source == "mem[dev]" and test.source == "mem[test]"


def test_split_keeps_text_pairs_aligned():
    data = TextClassificationData(
        texts=[f"a{i}" for i in range(20)], labels=[i % 2 for i in range(20)], label_names=["0", "1"],
        text_pairs=[f"b{i}" for i in range(20)],
    )
    for part in split_data(data, fractions=(0.5, 0.25, 0.25)):
        assert [t[1:] for t in part.texts] == [p[1:] for p in part.text_pairs]


@pytest.mark.parametrize("fractions", [(0.8, 0.2), (0.9, 0.2, -0.1), (0.5, 0.3, 0.3), (0.8, 0.1, 0.1, 0.0)])
def test_split_bad_fractions(fractions):
    with pytest.raises(DataError, match="fractions"):
        split_data(balanced(), fractions=fractions)


def test_split_empty_part():
    with pytest.raises(DataError, match="the test split is empty"):
        split_data(balanced(), fractions=(0.5, 0.5, 0.0))


def test_sample():
    data = balanced(n_per_label=10, labels=2)
    assert sample(data, None) is data
    assert sample(data, 100) is data
    picked = sample(data, 5, seed=3)
    assert len(picked) == 5
    assert len(set(picked.texts)) == 5 and set(picked.texts) <= set(data.texts)
    assert picked.texts == sample(data, 5, seed=3).texts
    assert picked.texts != sample(data, 5, seed=4).texts
    truth = dict(zip(data.texts, data.labels))
    assert all(truth[t] == y for t, y in zip(picked.texts, picked.labels))


# ---------------------------------------------------------------- batches


def encoded() -> EncodedData:
    return EncodedData(
        input_ids=[[101, 7, 102], [101, 5, 6, 8, 102], [101, 102]],
        token_type_ids=[[0, 0, 0], [0, 0, 1, 1, 1], [0, 0]],
        labels=np.array([1, 0, 1], dtype=np.int64),
    )


def test_collate_pads_to_longest_member():
    batch = encoded().collate([0, 2])
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["labels"].tolist() == [1, 1]
    assert all(v.dtype == np.int64 for v in batch.values())


def test_collate_pad_to_and_pad_id():
    batch = encoded().collate([1, 0], pad_to=6, pad_id=9)
    assert batch["input_ids"].tolist() == [[101, 5, 6, 8, 102, 9], [101, 7, 102, 9, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]]
    assert batch["labels"].tolist() == [0, 1]


def test_batches_follow_order():
    batches = list(encoded().batches(2, order=[2, 1, 0]))
    assert [b["input_ids"].shape for b in batches] == [(2, 5), (1, 3)]
    assert batches[0]["labels"].tolist() == [1, 0]
    assert len(encoded()) == 3


# ---------------------------------------------------------------- pkg:// paths


def test_resolve_pkg_path_inside_installed_package():
    import json as json_module

    resolved = resolve_path("pkg://json/decoder.py")
    assert resolved == Path(json_module.__file__).parent / "decoder.py"
    assert resolved.is_file()


def test_resolve_plain_path_expands_user():
    assert resolve_path("~/x.tsv") == Path.home() / "x.tsv"
    assert resolve_path("rel/x.tsv") == Path("rel/x.tsv")


@pytest.mark.parametrize("spec", ["pkg://no_such_package_xyz/data.csv", "pkg://no_such_package_xyz.sub/data.csv"])
def test_resolve_missing_package(spec):
    with pytest.raises(DataError) as info:
        resolve_path(spec)
    assert "no_such_package_xyz" in str(info.value)
    assert "pip install no-such-package-xyz" in str(info.value)
    assert "local path" in str(info.value)


def test_load_data_through_missing_package():
    with pytest.raises(DataError, match="not installed"):
        load_data("pkg://no_such_package_xyz/train.csv")
