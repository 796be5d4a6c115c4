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
from tinybert_edge.logs import configure_logging

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_data_args(parser: argparse.ArgumentParser, required: bool = False, splits: bool = True) -> None:
    parser.add_argument("--data", required=required, help="data file (.tsv GLUE, .csv, .jsonl) or saved HF dataset folder; "
                        "pkg://<package>/<path> points inside an installed package")
    if splits:
        parser.add_argument("--dev", dest="dev_path", help="separate dev file (otherwise --data is split 80/10/10)")
        parser.add_argument("--test", dest="test_path", help="separate test file (defaults to the dev file when --dev is given)")
    parser.add_argument("--format", choices=["tsv", "csv", "jsonl", "hf-disk"], help="data format (default: from the extension)")
    parser.add_argument("--text-column", help="text column (default: GLUE names, then 'text')")
    parser.add_argument("--text-pair-column", help="second text column for sentence-pair tasks")
    parser.add_argument("--label-column", help="label column (default: label, sentiment, class, ...)")
    parser.add_argument("--encoding", help="file encoding (default utf-8)")
    parser.add_argument("--encoding-errors", choices=["strict", "replace", "ignore"], help="what to do with undecodable bytes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinybert-edge",
        description="Distil a BERT teacher into a TinyBERT student, export it to ONNX/TFLite int8, and measure it.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--quiet", action="store_true", help="only warnings and the final table")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("pipeline", help="teacher -> student -> int8 ONNX/TFLite -> accuracy, latency, memory report")
    p.add_argument("--config", help="TOML file with [data], [finetune], [distill] tables and top-level settings")
    p.add_argument("--name", help="run name; the run folder is <runs-dir>/<name> (default: a timestamp)")
    p.add_argument("--runs-dir", help="folder holding run folders (default: runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run, skipping finished stages")
    p.add_argument("--teacher", help="teacher folder: a bare encoder (fine-tuned here, cached) or a fine-tuned classifier")
    p.add_argument("--student", help="tinybert-4l-312h, tinybert-6l-768h, teacher-layers:2,4,6, config:<json> or a folder")
    p.add_argument("--cache-dir", help="where fine-tuned teachers are cached (default: ~/.cache/tinybert-edge)")
    _add_data_args(p)
    p.add_argument("--finetune-examples", type=int, help="training examples for teacher fine-tuning")
    p.add_argument("--distill-examples", type=int, help="training examples for distillation")
    p.add_argument("--intermediate-epochs", type=float, help="epochs of stage 1 (intermediate layers)")
    p.add_argument("--prediction-epochs", type=float, help="epochs of stage 2 (prediction layer)")
    p.add_argument("--seq-lengths", type=int, nargs="+", help="sequence lengths to export and measure (default 64 128)")
    p.add_argument("--formats", nargs="+", choices=["onnx", "tflite"], help="artifact formats (default both)")
    p.add_argument("--threads", type=int, help="threads for inference and measurement (default 2)")
    p.add_argument("--bench-seconds", type=float, help="minimum seconds per latency measurement (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("finetune", help="fine-tune a bare encoder into a task teacher (cached)")
    p.add_argument("encoder", help="local Hugging Face encoder folder")
    _add_data_args(p, required=True)
    p.add_argument("--examples", type=int, help="at most this many training examples")
    p.add_argument("--epochs", type=float)
    p.add_argument("--cache-dir")

    p = sub.add_parser("distill", help="task-distil a fine-tuned teacher into a student folder")
    p.add_argument("teacher", help="fine-tuned teacher folder")
    p.add_argument("output", help="student folder to write")
    _add_data_args(p, required=True)
    p.add_argument("--student", help="student spec (default teacher-layers:2,4,6)")
    p.add_argument("--task", help="per-task preset of the TinyBERT recipe (sst2, cola, mrpc, qqp, mnli, qnli, rte); "
                   "explicit flags override it")
    p.add_argument("--config", help="TOML file with a [distill] table (any DistillConfig key)")
    p.add_argument("--examples", type=int, help="at most this many training examples")
    p.add_argument("--intermediate-epochs", type=float)
    p.add_argument("--prediction-epochs", type=float)
    p.add_argument("--attention-loss", choices=["scores", "relation"],
                   help="TinyBERT attention-score MSE (equal head counts) or MiniLM relations (any head count)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in <output>.work")

    p = sub.add_parser("general-distill", help="general distillation of a pre-trained encoder on a plain-text corpus")
    p.add_argument("teacher", help="pre-trained (not fine-tuned) encoder folder")
    p.add_argument("corpus", help="plain-text file, one sentence or document per line (streamed, never loaded whole)")
    p.add_argument("output", help="student encoder folder to write (then: distill --student <output>)")
    p.add_argument("--student", help="student spec (default tinybert-4l-312h)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (default: --epochs passes over the corpus)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--attention-loss", choices=["scores", "relation"])
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in <output>.work")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("augment", help="TinyBERT data augmentation: N new sentences per example, label kept (cached)")
    p.add_argument("model", help="BERT folder giving the candidates: masked-LM head if it has one, else embedding neighbours")
    _add_data_args(p, required=True, splits=False)  # the training data; a pair's second text is kept as it is
    p.add_argument("--out", required=True, help="JSONL file to write (originals and augmented copies; --data reads it)")
    p.add_argument("--n-augmented", type=int, help="new sentences per example, N_a (default 20)")
    p.add_argument("--p-t", type=float, help="probability of replacing each word, p_t (default 0.4)")
    p.add_argument("--top-k", type=int, help="candidates per word, K (default 15)")
    p.add_argument("--generator", choices=["auto", "embedding"], help="auto: masked LM for single-piece words when "
                   "the folder has its head; embedding: neighbours for every word")
    p.add_argument("--max-examples", type=int, help="augment at most this many examples (a seeded sample)")
    p.add_argument("--batch-size", type=int, help="sentences per masked-LM forward pass (default 32)")
    p.add_argument("--seed", type=int)
    p.add_argument("--cache-dir", help="where results are cached (default: ~/.cache/tinybert-edge)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("export", help="export a model folder to ONNX and TFLite with dynamic int8, verified")
    p.add_argument("model", help="fine-tuned model folder (teacher or student)")
    p.add_argument("output", help="folder for the artifacts")
    p.add_argument("--formats", nargs="+", choices=["onnx", "tflite"], default=["onnx", "tflite"])
    p.add_argument("--no-quantize", action="store_true", help="fp32 only")
    p.add_argument("--seq-lengths", type=int, nargs="+", default=list(DEFAULT_SEQUENCE_LENGTHS),
                   help="TFLite signature lengths (seq_<L>); recorded in the ONNX metadata")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (14 to 20)")
    p.add_argument("--keep-fp32", nargs="+", default=[], metavar="MODULE",
                   help="model modules whose ONNX operators stay fp32 in int8, e.g. embeddings classifier")

    p = sub.add_parser("package", help="write a verified on-device bundle (model, vocab, settings, golden vectors)")
    p.add_argument("model", help="export folder (output of `export`) or one artifact (.tflite file or ONNX folder)")
    p.add_argument("output", help="bundle folder, or a path ending in .zip for a zip")
    p.add_argument("--tokenizer", default=None, help="folder with vocab.txt/tokenizer_config.json if the artifact lacks them")
    p.add_argument("--student", default=None, help="PyTorch model folder for the cross-check logits (default: from metadata)")
    p.add_argument("--runtime", nargs="+", choices=["litert", "onnxruntime"], default=["litert", "onnxruntime"],
                   dest="runtimes", help="which artifacts to include")
    p.add_argument("--precision", default="int8", choices=["int8", "fp32", "fp16"])
    p.add_argument("--max-length", type=int, default=None, help="tokenizer max length (capped at the largest bucket)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")

    p = sub.add_parser("verify", help="check a bundle's checksums and re-run its golden vectors")
    p.add_argument("bundle", help="bundle folder or .zip")

    p = sub.add_parser("evaluate", help="accuracy of a model folder or artifact on labelled data")
    p.add_argument("model", help="model folder, .onnx file/folder or .tflite file")
    p.add_argument("--backend", choices=["torch", "torch-int8", "onnxruntime", "litert"], default=None,
                   help="default: from the path")
    _add_data_args(p, required=True)
    p.add_argument("--model-folder", help="folder with the tokenizer and labels (default: beside the artifact, "
                   "else the source model in its metadata)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--threads", type=int)

    p = sub.add_parser("bench", help="latency, memory, accuracy and roofline of each target next to the teacher; "
                       "`bench compare A B` diffs two reports")
    p.add_argument("--teacher", help="fine-tuned teacher folder: measured first, in PyTorch fp32, and compared against")
    p.add_argument("--target", dest="targets", action="extend", nargs="+", default=[], metavar="NAME=BACKEND:PATH",
                   help="a model to measure, e.g. 'student int8=onnxruntime:runs/x/artifacts/onnx-int8'; backends: "
                        "torch, torch-int8, onnxruntime, litert (repeat the flag or list several)")
    p.add_argument("--data", help="labelled data file: real inputs for the timings and the accuracy column")
    p.add_argument("--format", choices=["tsv", "csv", "jsonl", "hf-disk"], help="data format (default: from the extension)")
    p.add_argument("--text-column", help="text column (default: GLUE names, then 'text')")
    p.add_argument("--text-pair-column", help="second text column for sentence-pair tasks")
    p.add_argument("--label-column", help="label column (default: label, sentiment, class, ...)")
    p.add_argument("--encoding", help="file encoding (default utf-8)")
    p.add_argument("--encoding-errors", choices=["strict", "replace", "ignore"], help="what to do with undecodable bytes")
    p.add_argument("--max-examples", type=int, default=1000, help="accuracy on at most this many examples (default 1000)")
    p.add_argument("--seq-lengths", type=int, nargs="+", help="sequence lengths (default 64 128)")
    p.add_argument("--batch-sizes", type=int, nargs="+", help="batch sizes to sweep; batch 1 is always measured, "
                   "it is the comparison table's (default 1)")
    p.add_argument("--threads", type=int, nargs="+", help="thread counts to sweep; the first is the comparison "
                   "table's (default 2)")
    p.add_argument("--min-seconds", type=float, help="minimum timed seconds per point (default 3)")
    p.add_argument("--min-iterations", type=int, help="minimum timed calls per point (default 50)")
    p.add_argument("--warmup", type=int, help="untimed calls before timing (default 10)")
    p.add_argument("--no-roofline", action="store_true", help="skip the GEMM peak measurement and the roofline column")
    p.add_argument("--out", help="folder for report.json, report.md and the plots")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    bench_sub = p.add_subparsers(dest="bench_command", metavar="{compare}")
    c = bench_sub.add_parser("compare", help="diff two report.json files; exit 1 when B regressed beyond the noise")
    c.add_argument("a", help="baseline report.json (bench or pipeline)")
    c.add_argument("b", help="candidate report.json")
    c.add_argument("--min-effect", type=float, default=0.05, help="smallest p50 slow-down that counts (default 0.05)")
    c.add_argument("--alpha", type=float, default=0.01, help="significance level of the noise test (default 0.01)")
    c.add_argument("--method", choices=["auto", "mann-whitney", "bootstrap"], default="auto",
                   help="noise test: Mann-Whitney U (scipy), bootstrap CI of the median difference, or auto")
    return parser


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("dev_path", "test_path", "format", "text_column", "text_pair_column", "label_column", "encoding", "encoding_errors")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _data_spec(args: argparse.Namespace):
    from tinybert_edge.data import DataSpec

    values = _data_overrides(args)
    return DataSpec(path=args.data, **{k: v for k, v in values.items() if k not in ("dev_path", "test_path")})


def _pipeline_config(args: argparse.Namespace):
    from tinybert_edge.config import DataConfig, PipelineConfig

    config = PipelineConfig.from_toml(args.config) if args.config else PipelineConfig()
    top = {"name": args.name, "runs_dir": args.runs_dir, "teacher": args.teacher, "cache_dir": args.cache_dir,
           "threads": args.threads, "bench_min_seconds": args.bench_seconds, "formats": args.formats,
           "sequence_lengths": args.seq_lengths}
    config = dataclasses.replace(config, **{k: v for k, v in top.items() if v is not None})
    if args.data:
        # A new corpus starts from the plain data defaults, not from the embedded corpus's reading options.
        config = dataclasses.replace(config, data=DataConfig(path=args.data, **_data_overrides(args)))
    elif _data_overrides(args):
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, **_data_overrides(args)))
    distill = {"student": args.student, "max_train_examples": args.distill_examples,
               "intermediate_epochs": args.intermediate_epochs, "prediction_epochs": args.prediction_epochs}
    config = dataclasses.replace(config, distill=dataclasses.replace(
        config.distill, **{k: v for k, v in distill.items() if v is not None}))
    if args.finetune_examples is not None:
        config = dataclasses.replace(config, finetune=dataclasses.replace(
            config.finetune, max_train_examples=args.finetune_examples))
    return config


def cmd_pipeline(args: argparse.Namespace) -> int:
    from tinybert_edge.app.pipeline import pipeline
    from tinybert_edge.app.report import render_report_markdown

    report = pipeline(_pipeline_config(args), overwrite=args.overwrite, resume=args.resume, progress=not args.no_progress)
    print(render_report_markdown(report))
    print(f"Report written to {Path(report['run_dir']).resolve() / 'report.md'}")
    return 0


def _splits(args: argparse.Namespace):
    from tinybert_edge.config import DataConfig
    from tinybert_edge.data import load_splits

    return load_splits(DataConfig(path=args.data, **_data_overrides(args)))


def cmd_finetune(args: argparse.Namespace) -> int:
    from tinybert_edge.config import FinetuneConfig
    from tinybert_edge.training.finetune import finetune

    train, dev, _ = _splits(args)
    overrides = {"max_train_examples": args.examples, "epochs": args.epochs}
    config = FinetuneConfig(**{k: v for k, v in overrides.items() if v is not None})
    print(finetune(args.encoder, train, dev, config, args.cache_dir))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from tinybert_edge.config import distill_config_from
    from tinybert_edge.distillation.task_distillation import distill

    train, dev, _ = _splits(args)
    overrides = {"task": args.task, "student": args.student, "max_train_examples": args.examples,
                 "intermediate_epochs": args.intermediate_epochs, "prediction_epochs": args.prediction_epochs,
                 "attention_loss": args.attention_loss}
    config = distill_config_from(args.config, {k: v for k, v in overrides.items() if v is not None})
    output = Path(args.output)
    result = distill(args.teacher, train, dev, output, config, work_dir=output.with_name(output.name + ".work"),
                     resume=args.resume)
    print(f"student written to {result.student_dir} (dev accuracy {result.dev_accuracy:.4f})")
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
          f"written to {write_jsonl(augmented, args.out)}")
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
          f"STUDENT_OUT --data TRAIN --student {result.student_dir}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from tinybert_edge.converters import ExportConfig, QuantizationConfig
    from tinybert_edge.converters.chain import export

    artifacts = export(args.model, args.output, formats=tuple(args.formats), quantize=not args.no_quantize,
                       config=ExportConfig(opset=args.opset, sequence_buckets=tuple(args.seq_lengths)),
                       qconfig=QuantizationConfig.for_this_cpu(keep_fp32=tuple(args.keep_fp32)))
    for artifact in artifacts:
        print(f"{artifact.format:7s} {artifact.precision:5s} {artifact.path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tinybert_edge.artifacts import Artifact
    from tinybert_edge.evaluation import evaluate

    artifact = Artifact.open(args.model)
    backend = args.backend or artifact.runtime
    result = evaluate(args.model, artifact.task.read(_data_spec(args)), backend=backend, max_length=args.max_length,
                      threads=args.threads, model_folder=args.model_folder)
    print(f"{result.primary_metric} {result.score:.4f} on {result.n} examples ({backend})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_command == "compare":
        from tinybert_edge.benchmarks.compare import compare, render_diff_markdown

        comparison = compare(args.a, args.b, min_effect=args.min_effect, alpha=args.alpha, method=args.method)
        print(render_diff_markdown(comparison))
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

    rows = bench(args.targets, config=config, progress=not args.no_progress, teacher=args.teacher,
                 data=_data_spec(args), out=args.out, max_examples=args.max_examples)
    print(render_comparison_markdown(rows))
    print(f"Report written to {Path(args.out).resolve() / 'report.md'}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from tinybert_edge.app.bundle import package

    out = package(args.model, args.output, tokenizer=args.tokenizer, student=args.student, runtimes=args.runtimes,
                  precision=args.precision, max_length=args.max_length, overwrite=args.overwrite)
    print(f"bundle: {out}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from tinybert_edge.runtime.bundle import verify

    summary = verify(args.bundle)
    for name, result in summary["models"].items():
        if "skipped" in result:
            print(f"{name}: skipped ({result['skipped']})")
        else:
            print(f"{name}: {result['cases']} golden cases, max |logit diff| {result['max_abs_logit_diff']:.3g}, "
                  f"argmax flips {result['argmax_flips']}")
    print(f"ok: {summary['files_checked']} checksums and the golden vectors of '{args.bundle}'")
    return 0


COMMANDS = {"augment": cmd_augment, "bench": cmd_bench, "pipeline": cmd_pipeline, "finetune": cmd_finetune, "distill": cmd_distill,
            "general-distill": cmd_general_distill, "export": cmd_export,
            "evaluate": cmd_evaluate, "package": cmd_package, "verify": cmd_verify}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_USER_ERROR
    configure_logging(quiet=args.quiet)
    from tinybert_edge.errors import TinyBertEdgeError

    try:
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
