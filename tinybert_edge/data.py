"""Labelled text-classification data behind one interface.

Formats: GLUE-style TSV, CSV and JSONL with named text/label columns (single texts or text pairs), and a Hugging
Face `datasets` dataset saved to disk. Labels are kept by name; `label_names` fixes their order so that a model's
`id2label` can be checked against the data instead of trusted.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from tinybert_edge.errors import ConfigError, DataError
from tinybert_edge.io import resolve_path
from tinybert_edge.registry import Registry

log = logging.getLogger(__name__)

# Column pairs tried, in order, when the caller names no text column (GLUE's own headers first).
TEXT_COLUMN_GUESSES: tuple[tuple[str, str | None], ...] = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("question", "sentence"),
    ("premise", "hypothesis"),
    ("#1 String", "#2 String"),  # GLUE's MRPC
    ("sentence", None),
    ("text", None),
)
LABEL_COLUMN_GUESSES: tuple[str, ...] = ("label", "labels", "sentiment", "class", "category", "target",
                                         "Quality")  # GLUE's MRPC
# The label of a token that no loss or metric counts (padding, continuation sub-tokens): PyTorch's ignore_index.
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TextClassificationData:
    """Texts (optionally pairs) with integer labels that index `label_names`."""

    task: ClassVar[str] = "text-classification"  # the tinybert_edge.tasks name that reads and encodes these

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    text_pairs: list[str] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.labels)} labels")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(f"{self.source}: {len(self.texts)} texts but {len(self.text_pairs)} second texts")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def subset(self, indices: Sequence[int], source_suffix: str = "") -> "TextClassificationData":
        idx = list(indices)
        return TextClassificationData(
            texts=[self.texts[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            label_names=list(self.label_names),
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
            source=self.source + source_suffix,
        )

    def label_of(self, index: int) -> str:
        """Example `index`'s label as the data writes it (its class name): what digests, augmentation and JSONL
        keep."""
        return self.label_names[self.labels[index]]

    def with_examples(self, texts: Sequence[str], labels: Sequence[str], text_pairs: Sequence[str] | None,
                      source: str) -> "TextClassificationData":
        """New examples of this data's kind, labels given as `label_of` gives them (class names of this data)."""
        position = {name: i for i, name in enumerate(self.label_names)}
        return TextClassificationData(texts=list(texts), labels=[position[label] for label in labels],
                                      label_names=list(self.label_names),
                                      text_pairs=None if text_pairs is None else list(text_pairs), source=source)

    def strata(self) -> np.ndarray:
        """The group of each example that a split keeps in proportion: its class."""
        return np.asarray(self.labels, dtype=np.int64)

    def with_label_names(self, label_names: Sequence[str]) -> "TextClassificationData":
        """Re-index the labels to follow `label_names` (a model's id2label order). Every data label must be in it."""
        names = list(label_names)
        missing = sorted(set(self.label_names) - set(names))
        if missing:
            raise DataError(
                f"{self.source}: labels {missing} are not among the model's labels {names}; "
                "use data with the model's labels or a teacher fine-tuned on these labels"
            )
        position = {name: i for i, name in enumerate(names)}
        return TextClassificationData(
            texts=self.texts,
            labels=[position[self.label_names[y]] for y in self.labels],
            label_names=names,
            text_pairs=self.text_pairs,
            source=self.source,
        )


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and how to read it."""

    path: str
    format: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    label_names: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    encoding_errors: str = "strict"
    split: str = "train"
    extra: dict = field(default_factory=dict)
    # False for a TSV/CSV file without a header row (GLUE's CoLA): columns are then named by 0-based position, "0",
    # "1", ..., and text and label columns must be named.
    header: bool = True
    # The tinybert_edge.tasks name (or a GLUE preset name such as "stsb") whose examples these rows are; None is
    # text classification.
    task: str | None = None


Reader = Callable[[Path, DataSpec], tuple[list[str], list[dict]]]
READERS: Registry[Reader] = Registry("data format")


class Rows(list):
    """A reader's rows with, for each, where it is in the file (`lines[i]`: 1-based line number, or None when the
    format has no lines), so that an error about one row can name the line to fix."""

    def __init__(self, rows: Iterable[dict] = (), lines: Iterable[int | None] = ()) -> None:
        super().__init__(rows)
        self.lines: list[int | None] = list(lines)

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if index < len(self.lines) else None


def _open_text(path: Path, spec: DataSpec):
    # UTF-8 files may start with a byte-order mark (GLUE's MRPC does); utf-8-sig drops it, so the first column is
    # named "Quality", not "\ufeffQuality", and reads files without one the same way.
    encoding = "utf-8-sig" if codecs.lookup(spec.encoding).name == "utf-8" else spec.encoding
    return open(path, encoding=encoding, errors=spec.encoding_errors, newline="")


def positional_header(width: int) -> list[str]:
    """Column names of a file without a header row: each column's 0-based position ("0", "1", ...)."""
    return [str(i) for i in range(width)]


def _decode_error(path: Path, spec: DataSpec, exc: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path}: byte {exc.start} is not valid {spec.encoding}; pass the file's encoding "
        "(--encoding latin-1) or --encoding-errors replace to substitute undecodable bytes "
        "(Python: encoding=..., encoding_errors='replace')"
    )


@READERS.register("tsv")
def read_tsv(path: Path, spec: DataSpec) -> tuple[list[str], list[dict]]:
    """GLUE TSV: a header row (unless `spec.header` is False), tab-separated, no quoting (GLUE sentences contain bare
    quotes)."""
    try:
        with _open_text(path, spec) as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            first_line = 1
            if spec.header:
                header = next(reader, None)
                if header is None:
                    return [], []
                first_line = 2
            else:
                header = None
            rows = Rows()
            for line_number, values in enumerate(reader, start=first_line):
                if not values:
                    continue
                if header is None:
                    header = positional_header(len(values))
                if len(values) != len(header):
                    raise DataError(
                        f"{path}:{line_number}: {len(values)} tab-separated fields but the "
                        f"{'header' if spec.header else 'first row'} has {len(header)}; "
                        + (_QUOTE_HINT if any('"' in value for value in values) else "")
                        + "fix the row or convert the file to CSV with quoting"
                    )
                rows.append(dict(zip(header, values)))
                rows.lines.append(line_number)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, spec, exc) from exc
    return header or [], rows


# Why a TSV row with a quote character can have the wrong number of fields.
_QUOTE_HINT = ("the row holds a '\"', and TSV fields are read as written, without quoting (GLUE's convention, "
               "csv.QUOTE_NONE), so a quoted field with a tab or line break inside splits the row; ")


@READERS.register("csv")
def read_csv(path: Path, spec: DataSpec) -> tuple[list[str], list[dict]]:
    try:
        with _open_text(path, spec) as handle:
            if spec.header:
                reader = csv.DictReader(handle)
                source = reader.reader
            else:
                source = csv.reader(handle)
                reader = None
            rows = Rows()
            header: list[str] | None = None
            start = 2 if spec.header else 1  # a quoted field may span lines, so a row starts after the previous one
            for values in (reader if reader is not None else source):
                if reader is None:
                    if not values:
                        start = source.line_num + 1
                        continue
                    header = header or positional_header(len(values))
                    values = dict(zip(header, values))
                rows.append(values)
                rows.lines.append(start)
                start = source.line_num + 1
            if reader is not None:
                header = list(reader.fieldnames or [])
    except UnicodeDecodeError as exc:
        raise _decode_error(path, spec, exc) from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not readable as CSV ({exc}); check the delimiter and quoting") from exc
    return header or [], rows


@READERS.register("jsonl")
def read_jsonl(path: Path, spec: DataSpec) -> tuple[list[str], list[dict]]:
    rows = Rows()
    header: dict[str, None] = {}
    try:
        with _open_text(path, spec) as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{line_number}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{line_number}: a JSON {type(row).__name__}, not an object; each line must be one JSON object")
                header.update(dict.fromkeys(row))
                rows.append(row)
                rows.lines.append(line_number)
    except UnicodeDecodeError as exc:
        raise _decode_error(path, spec, exc) from exc
    return list(header), rows


@READERS.register("hf-disk")
def read_hf_disk(path: Path, spec: DataSpec) -> tuple[list[str], list[dict]]:
    """A dataset written by `datasets.Dataset.save_to_disk` (or a DatasetDict; `spec.split` picks the split)."""
    from tinybert_edge.errors import require

    datasets = require("datasets", package="datasets", extra="data", purpose="Reading a saved Hugging Face dataset")
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{path}: not a dataset saved with save_to_disk ({exc})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        if spec.split not in loaded:
            raise DataError(f"{path}: no split '{spec.split}'; available: {', '.join(loaded)}; pass --split")
        loaded = loaded[spec.split]
    header = list(loaded.column_names)
    rows = [dict(row) for row in loaded]
    for column, feature in loaded.features.items():
        names = getattr(feature, "names", None)
        if names:  # ClassLabel: store names, not indices, so labels are matched by name like every other format
            for row in rows:
                # -1 is ClassLabel's "no label" (GLUE test splits); names[-1] would silently be the last class.
                value = row[column]
                row[column] = names[value] if value is not None and value >= 0 else None
    return header, rows


def detect_format(path: Path) -> str:
    if path.is_dir():
        return "hf-disk"
    suffix = path.suffix.lower()
    formats = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl"}
    if suffix not in formats:
        raise DataError(
            f"{path}: cannot tell the format from the extension '{suffix}'; "
            f"pass --format with one of: {', '.join(READERS.names())}"
        )
    return formats[suffix]


def _label_sort_key(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)


def _choose_columns(header: list[str], spec: DataSpec, path: Path) -> tuple[str, str | None]:
    if spec.text_column:
        for column in (spec.text_column, spec.text_pair_column):
            if column and column not in header:
                raise DataError(f"{path}: no column '{column}'; the columns are {header}; pass --text-column")
        return spec.text_column, spec.text_pair_column
    if not spec.header:
        raise DataError(f"{path}: the file has no header (--no-header), so name its text column by 0-based position, "
                        f"e.g. --text-column {len(header) - 1} (Python: text_column='{len(header) - 1}'); it has "
                        f"{len(header)} columns")
    if spec.text_pair_column and spec.text_pair_column not in header:
        raise DataError(f"{path}: no column '{spec.text_pair_column}'; the columns are {header}; pass --text-column")
    for first, second in TEXT_COLUMN_GUESSES:
        if first in header and (second is None or second in header):
            # An explicit second-text column wins over the guessed pair (else it would be silently dropped).
            return first, spec.text_pair_column or second
    raise DataError(f"{path}: cannot find the text column among {header}; name it with --text-column")


def _choose_label_column(header: list[str], spec: DataSpec, path: Path,
                         guesses: Sequence[str] = LABEL_COLUMN_GUESSES) -> str:
    if spec.label_column:
        if spec.label_column not in header:
            raise DataError(
                f"{path}: no label column '{spec.label_column}'; the columns are {header}; "
                "name the label column with --label-column"
            )
        return spec.label_column
    if not spec.header:
        raise DataError(f"{path}: the file has no header (--no-header), so name its label column by 0-based position, "
                        f"e.g. --label-column 1 (Python: label_column='1'); it has {len(header)} columns")
    for name in guesses:
        if name in header:
            return name
    scores = [name for name in SCORE_COLUMNS if name in header and name not in guesses]
    raise DataError(
        f"{path}: no label column (looked for {', '.join(guesses)}); the columns are {header}; "
        "name the label column with --label-column"
        + (f", or, if '{scores[0]}' is the target (a regression score, as in GLUE's STS-B), {REGRESSION_FIX}"
           if scores else "")
    )


def _header_looks_like_data(header: Sequence[str]) -> bool:
    """Whether a first row read as a header is more likely a row of data: an empty or numeric cell, or a cell that
    reads as a sentence (GLUE's CoLA has no header: its first line is 'gj04, 1, , Our friends won't ...')."""
    return any(not str(cell).strip() or _as_number(str(cell)) is not None or len(str(cell).split()) >= 4
               for cell in header)


def _choose_all_columns(header: list[str], spec: DataSpec, path: Path, fmt: str,
                        label_guesses: Sequence[str]) -> tuple[str, str | None, str]:
    """(text, second text or None, label) columns; a missing column in a file whose first row looks like data is
    the header error, with the --no-header fix."""
    try:
        label_column = _choose_label_column(header, spec, path, label_guesses)
        text_column, pair_column = _choose_columns(header, spec, path)
    except DataError as exc:
        if spec.header and fmt in ("tsv", "csv") and _header_looks_like_data(header):
            shown = ", ".join(repr(cell[:30]) for cell in header[:6])
            raise DataError(
                f"{path}:1: the first line is read as the header, but it looks like data ({shown}); if the file has "
                "no header row (as GLUE's CoLA), pass --no-header and name the columns by 0-based position, e.g. "
                f"--no-header --text-column {len(header) - 1} --label-column 1 (Python: header=False, "
                f"text_column='{len(header) - 1}', label_column='1')"
            ) from exc
        raise
    return text_column, pair_column, label_column


def _missing_path_error(path: Path) -> DataError:
    """'does not exist', with the closest names in the same folder (a typo is the usual cause)."""
    import difflib

    hint = ""
    if path.parent.is_dir():
        names = sorted(p.name for p in path.parent.iterdir())
        close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.6)
        near = [n for n in names if Path(n).suffix in (".tsv", ".csv", ".jsonl", ".json")][:5]
        parts = ([f"did you mean {' or '.join(repr(n) for n in close)}?"] if close else []) + (
            [f"files there: {', '.join(near)}"] if near else [])
        hint = f" ({'; '.join(parts)})" if parts else ""
    return DataError(f"data path '{path}' does not exist{hint}; check the spelling or pass the right --data path")


def _where(path: Path, rows: Sequence[dict], index: int) -> str:
    """'file:line' for a row of a line-based format, else 'file: row N' (a saved dataset has no lines)."""
    line = rows.line_of(index) if isinstance(rows, Rows) else None
    return f"{path}:{line}" if line is not None else f"{path}: row {index + 1}"


def _as_number(label: str) -> float | None:
    """The label's value when it is written as a finite number ('1', '0.000', '3.8'), else None."""
    try:
        value = float(label)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


# Columns that name a regression target (GLUE's STS-B: "score"); the regression task looks for them first.
SCORE_COLUMNS = ("score", "similarity")
# How a user picks the regression task, named by every error about scores given to a classifier.
REGRESSION_FIX = "pass --task regression (or a GLUE preset that implies it, --task stsb; Python: load_data(..., task='regression'))"
CLASSIFICATION_FIX = ("leave out --task regression (or pass a classification preset such as --task mrpc; Python: "
                      "load_data(...) without task='regression')")


def check_label_values(path: Path, raw_labels: Sequence[str], rows: Sequence[dict], kept: Sequence[int],
                       label_column: str) -> None:
    """Refuse label columns that cannot be class names as written: non-integer numbers (a regression target such
    as STS-B's similarity score would silently become one class per distinct value) and one number written two ways
    ('0' and '0.000' would silently become two classes)."""
    numbers = {label: _as_number(label) for label in set(raw_labels)}
    if not all(value is not None for value in numbers.values()):
        return  # names such as 'pos' / 'neg' (or a mix): classes as written
    fractional = sorted((label for label, value in numbers.items() if value != int(value)), key=_label_sort_key)
    if fractional:
        scores = set(fractional)
        first = next(i for i, label in enumerate(raw_labels) if label in scores)  # the file's first such row
        raise DataError(
            f"{_where(path, rows, kept[first])}: the label column '{label_column}' holds non-integer numbers "
            f"({', '.join(fractional[:5])}{', ...' if len(fractional) > 5 else ''}; {len(numbers)} distinct values), "
            "which looks like a regression target (such as STS-B's similarity score), not class labels; to train on "
            f"the scores {REGRESSION_FIX}, or give a column of class labels with --label-column"
        )
    spellings: dict[float, list[str]] = {}
    for label, value in numbers.items():
        spellings.setdefault(value, []).append(label)
    clashes = {value: sorted(forms) for value, forms in spellings.items() if len(forms) > 1}
    if clashes:
        forms = next(iter(sorted(clashes.items())))[1]
        lines = [_where(path, rows, kept[raw_labels.index(form)]) for form in forms[:2]]
        raise DataError(
            f"the label column '{label_column}' writes one number in different ways "
            f"({' and '.join(repr(f) for f in forms)}, first at {lines[0]} and {lines[1]}), which would become "
            "different classes; write each class one way in the data (for example all integers)"
        )


def check_classes(data: TextClassificationData, purpose: str = "training") -> None:
    """Refuse training data with fewer than two classes: a classifier trained on it learns nothing (and a teacher
    fine-tuned on it scores a meaningless 100% on its dev split)."""
    present = sorted({data.label_names[y] for y in data.labels})
    if len(present) < 2:
        raise DataError(
            f"{data.source}: every {purpose} example has the label {present[0] if present else '(none)'!r}; a "
            "classifier needs at least two classes, so use data with every class (check --label-column and that "
            "the file is the whole training set, not one class's part of it)"
        )


@dataclass(frozen=True)
class Examples:
    """What the generic reader found in a file, before a task turns labels into its own kind: the texts, second
    texts and labels as written of every kept row, and where each row is (for errors that name the line)."""

    path: Path
    spec: DataSpec
    texts: list[str]
    text_pairs: list[str] | None
    raw_labels: list[str]
    label_column: str
    pair_column: str | None
    rows: Sequence[dict]
    kept: list[int]  # each example's row index in `rows`

    def where(self, example: int) -> str:
        """'file:line' (or 'file: row N') of example `example`."""
        return _where(self.path, self.rows, self.kept[example])


def make_spec(spec: DataSpec | str | os.PathLike[str], **options: Any) -> DataSpec:
    """A DataSpec from a path or a DataSpec, with the options that are not None on top (named like its fields)."""
    options = {k: (tuple(v) if k == "label_names" else v) for k, v in options.items() if v is not None}
    if isinstance(spec, DataSpec):
        return dataclasses.replace(spec, **options)
    return DataSpec(path=os.fspath(spec), **options)


def read_examples(spec: DataSpec, label_guesses: Sequence[str] = LABEL_COLUMN_GUESSES) -> Examples:
    """The rows of a file or saved dataset as texts, optional second texts and labels as written, for any task:
    the format from the extension (or `spec.format`), the columns as named or guessed (GLUE's headers first; the
    label column among `label_guesses`, which a task chooses).
    Rows with an empty text are dropped (and counted in the log); an empty label or an empty second text is an
    error that names the line."""
    path = resolve_path(spec.path)
    if not path.exists():
        raise _missing_path_error(path)
    fmt = spec.format or detect_format(path)
    if fmt != "hf-disk" and path.is_dir():
        raise DataError(f"data path '{path}' is a directory, not a {fmt} file; pass the file itself with --data")
    try:
        codecs.lookup(spec.encoding)
    except LookupError as exc:
        raise DataError(f"{path}: unknown encoding '{spec.encoding}'; pass a Python codec name such as utf-8 or "
                        "latin-1 (--encoding)") from exc
    reader = READERS.get(fmt)
    try:
        header, rows = reader(path, spec)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check the file and its permissions") from exc
    if not rows:
        raise DataError(f"{path}: the dataset is empty (no data rows); point --data at a file with examples")
    text_column, pair_column, label_column = _choose_all_columns(header, spec, path, fmt, label_guesses)
    texts, pairs, raw_labels = [], [] if pair_column else None, []
    kept: list[int] = []
    dropped = 0
    for index, row in enumerate(rows):
        text = row.get(text_column)
        label = row.get(label_column)
        if label is None or str(label).strip() == "":
            raise DataError(f"{_where(path, rows, index)}: a row has no value in the label column '{label_column}': "
                            f"{row!r:.200}; fill in the label or remove the row")
        if text is None or not str(text).strip():
            dropped += 1
            continue
        if pairs is not None:
            second = row.get(pair_column)
            if second is None or not str(second).strip():
                raise DataError(
                    f"{_where(path, rows, index)}: the second text (column '{pair_column}') is "
                    f"{'missing' if second is None else 'empty'} in a sentence-pair file: {row!r:.200}; every row "
                    "needs both texts, so fill it in or remove the row (or, for single texts, name no "
                    "--text-pair-column)"
                )
            pairs.append(str(second))
        texts.append(str(text))
        raw_labels.append(str(label).strip())
        kept.append(index)
    if dropped:
        log.info("%s: dropped %d rows with an empty text", path, dropped)
    if not texts:
        raise DataError(f"{path}: every row has an empty text; check --text-column")
    return Examples(path=path, spec=spec, texts=texts, text_pairs=pairs, raw_labels=raw_labels,
                    label_column=label_column, pair_column=pair_column, rows=rows, kept=kept)


def classification_data(examples: Examples) -> TextClassificationData:
    """Text-classification examples: labels are class names, in `spec.label_names` order when declared (a label
    outside it is an error), else sorted (numbers by value)."""
    spec, raw_labels = examples.spec, examples.raw_labels
    if spec.label_names is not None:
        names = list(spec.label_names)
        unknown = sorted(set(raw_labels) - set(names))
        if unknown:
            first = next(i for i, label in enumerate(raw_labels) if label in unknown)
            raise DataError(f"{examples.where(first)}: unknown labels {unknown[:10]}; the allowed labels "
                            f"are {names}; fix those rows, or declare every label (--label-names)")
    else:
        check_label_values(examples.path, raw_labels, examples.rows, examples.kept, examples.label_column)
        names = sorted(set(raw_labels), key=_label_sort_key)
    index = {name: i for i, name in enumerate(names)}
    return TextClassificationData(
        texts=examples.texts,
        labels=[index[y] for y in raw_labels],
        label_names=names,
        text_pairs=examples.text_pairs,
        source=str(examples.path),
    )


def read_classification(spec: DataSpec) -> TextClassificationData:
    """Text-classification data from the file `spec` describes (what the text-classification task's `read` does)."""
    return classification_data(read_examples(spec))


def load_data(
    spec: DataSpec | str | os.PathLike[str],
    *,
    task: str | None = None,
    format: str | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    label_names: Sequence[str] | None = None,
    encoding: str | None = None,
    encoding_errors: str | None = None,
    split: str | None = None,
    header: bool | None = None,
) -> Any:
    """Read labelled text from a file or saved dataset, as the examples of `task`. Rows with an empty text are
    dropped (and counted in the log).

    `task` is a tinybert_edge.tasks name ("text-classification", the default, or "regression") or a GLUE preset
    name that implies one ("stsb" is regression, "mrpc" classification). `spec` is a path (with the reading options
    as keywords, named like the CLI's flags: `text_column` is `--text-column`, `header=False` is `--no-header`) or
    a DataSpec; keywords given with a DataSpec override its fields.
    """
    from tinybert_edge.tasks import get_task

    spec = make_spec(spec, task=task, format=format, text_column=text_column, text_pair_column=text_pair_column,
                     label_column=label_column, label_names=label_names, encoding=encoding,
                     encoding_errors=encoding_errors, split=split, header=header)
    return get_task(spec.task).read(spec)


def split_data(data: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[Any, Any, Any]:
    """Deterministic stratified train/dev/test split (by class, or by score range for regression; see the data
    type's `strata`): the same data and seed always give the same three parts."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise DataError(f"split fractions {list(fractions)} must be three non-negative numbers that sum to 1")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    strata = data.strata()
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        rng.shuffle(members)
        n_train = int(round(fractions[0] * len(members)))
        n_dev = int(round(fractions[1] * len(members)))
        parts[0].extend(members[:n_train].tolist())
        parts[1].extend(members[n_train : n_train + n_dev].tolist())
        parts[2].extend(members[n_train + n_dev :].tolist())
    for name, part in zip(("train", "dev", "test"), parts):
        if not part:
            raise DataError(f"{data.source}: the {name} split is empty with fractions {list(fractions)}; use more data")
    return tuple(data.subset(sorted(p), f"[{name}]") for name, p in zip(("train", "dev", "test"), parts))  # type: ignore[return-value]


def load_splits(config: Any) -> tuple[Any, Any, Any]:
    """Train, dev and test for a `tinybert_edge.config.DataConfig`, read by its task (`config.task`, None for text
    classification): separate dev/test files when given (test defaults to dev), otherwise the task's split of the
    one file (stratified for classification and regression, by article for question answering); dev and test capped
    by max_*_examples."""
    from tinybert_edge.tasks import get_task

    spec = make_spec(config.path, format=config.format, text_column=config.text_column,
                     text_pair_column=config.text_pair_column, label_column=config.label_column,
                     label_names=getattr(config, "label_names", None), encoding=config.encoding,
                     encoding_errors=config.encoding_errors, header=getattr(config, "header", True),
                     task=getattr(config, "task", None),
                     extra={"label_all_subtokens": getattr(config, "label_all_subtokens", False),
                            "doc_stride": getattr(config, "doc_stride", 128)})
    task = get_task(spec.task)
    full = task.read(spec)
    if config.dev_path:
        train = full
        dev = task.read(dataclasses.replace(spec, path=config.dev_path))
        test = task.read(dataclasses.replace(spec, path=config.test_path)) if config.test_path else dev
    else:
        train, dev, test = task.split(full, config.split, config.seed)
    pooling = getattr(config, "pooling", None)
    if pooling is not None:  # the embedding task with the pooling a teacher without pooling files lacks
        from tinybert_edge.tasks.embedding import EmbeddingTask

        if task.name != "embedding":
            raise ConfigError(f"pooling={pooling!r} sets a sentence encoder's pooling: use it with task embedding "
                              f"(--task embedding), not {task.name}")
        configured = EmbeddingTask(pooling=pooling, normalize=getattr(config, "normalize", True))
        train, dev, test = (dataclasses.replace(part, task=configured) for part in (train, dev, test))
    return train, sample(dev, config.max_dev_examples, config.seed), sample(test, config.max_test_examples, config.seed)


def sample(data: Any, max_examples: int | None, seed: int = 0) -> Any:
    """At most `max_examples` rows, drawn without replacement with a fixed seed (all rows when None)."""
    if max_examples is None or len(data) <= max_examples:
        return data
    idx = np.random.default_rng(seed).choice(len(data), size=max_examples, replace=False)
    return data.subset(sorted(idx.tolist()), f"[:{max_examples}]")


@dataclass
class EncodedData:
    """Token ids per example (unpadded), ready for dynamically padded batches.

    `labels` holds one label per row (an array: class ids, or rows such as a question's start and end token), or,
    with `per_token_labels`, one list of token labels per row, padded with -100 (ignored by every loss) in batches.
    A row is a *feature*: one example may give several (question answering's windows over a long context).
    `features` holds per-row extras that batches do not carry (word ids, character offsets, each row's example
    index), and `examples` the data the rows were encoded from (what task metrics score against).
    """

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    labels: Any
    per_token_labels: bool = False
    features: dict[str, list] = field(default_factory=dict)
    examples: Any = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def select(self, indices: Sequence[int]) -> "EncodedData":
        """These rows (features) only, in this order, with their per-row extras; `examples` is kept whole."""
        idx = list(indices)
        labels = [self.labels[i] for i in idx] if self.per_token_labels else np.asarray(self.labels)[idx]
        return EncodedData(
            input_ids=[self.input_ids[i] for i in idx], token_type_ids=[self.token_type_ids[i] for i in idx],
            labels=labels, per_token_labels=self.per_token_labels,
            features={name: [values[i] for i in idx] for name, values in self.features.items()},
            examples=self.examples,
        )

    def batches(self, batch_size: int, order: Iterable[int] | None = None, pad_to: int | None = None,
                pad_id: int = 0) -> Iterable[dict[str, np.ndarray]]:
        """Yield int64 numpy batches padded to the longest member (or to `pad_to`)."""
        indices = list(range(len(self))) if order is None else list(order)
        for start in range(0, len(indices), batch_size):
            chosen = indices[start : start + batch_size]
            yield self.collate(chosen, pad_to=pad_to, pad_id=pad_id)

    def fixed_length(self, lengths: Sequence[int], rows: int | None = None) -> dict[int, dict[str, np.ndarray]]:
        """The first `rows` examples truncated or padded to exactly each length (a benchmark's fixed shapes).

        A truncated row keeps its final [SEP], so every row stays a valid BERT input; padding has mask 0.
        """
        chosen = list(range(len(self) if rows is None else min(rows, len(self))))
        width = max(max(lengths), max(len(self.input_ids[i]) for i in chosen))
        batch = self.collate(chosen, pad_to=width)
        real = batch["attention_mask"].sum(1)
        last = batch["input_ids"][np.arange(len(chosen)), real - 1]
        result = {}
        for n in lengths:
            inputs = {k: np.ascontiguousarray(v[:, :n]) for k, v in batch.items() if k != "labels"}
            cut = real > n
            inputs["input_ids"][cut, n - 1] = last[cut]
            result[n] = inputs
        return result

    def collate(self, chosen: Sequence[int], pad_to: int | None = None, pad_id: int = 0) -> dict[str, np.ndarray]:
        width = pad_to or max(len(self.input_ids[i]) for i in chosen)
        ids = np.full((len(chosen), width), pad_id, dtype=np.int64)
        types = np.zeros((len(chosen), width), dtype=np.int64)
        mask = np.zeros((len(chosen), width), dtype=np.int64)
        for row, i in enumerate(chosen):
            n = len(self.input_ids[i])
            ids[row, :n] = self.input_ids[i]
            types[row, :n] = self.token_type_ids[i]
            mask[row, :n] = 1
        if self.per_token_labels:
            labels = np.full((len(chosen), width), IGNORE_INDEX, dtype=np.int64)
            for row, i in enumerate(chosen):
                values = self.labels[i][:width]
                labels[row, : len(values)] = values
        else:
            labels = np.asarray(self.labels)[list(chosen)]
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": labels}


def encode(tokenizer, data: Any, max_length: int, label_dtype: Any = np.int64) -> EncodedData:
    """Tokenize texts (and pairs) with truncation to `max_length` and no padding (batches pad themselves); labels as
    `label_dtype` (class ids; float32 for regression scores)."""
    encoded = tokenizer(
        data.texts,
        data.text_pairs,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_token_type_ids=True,
    )
    return EncodedData(
        input_ids=[list(x) for x in encoded["input_ids"]],
        token_type_ids=[list(x) for x in encoded["token_type_ids"]],
        labels=np.asarray(data.labels, dtype=label_dtype),
    )
