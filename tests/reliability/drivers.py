"""Child processes that the interruption tests SIGKILL. Run as a script, never imported by pytest as a test.

    python drivers.py distill TEACHER DATA OUT [--resume]   # the public distill API with a checkpoint every step
    python drivers.py report REPORT_JSON RUN_DIR ROUNDS      # write_report over and over into RUN_DIR
    python drivers.py package EXPORT_DIR OUT ROUNDS          # package (overwrite) the ONNX export over and over

`tinybert-edge distill` has no flag for checkpoint_every, so the distill driver calls the same public function the
CLI calls, with the same work folder (<OUT>.work).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Shared by the driver and the in-process reference run, so both follow the same path.
DISTILL_SETTINGS = dict(student="teacher-layers:2", batch_size=4, max_length=16, intermediate_epochs=3.0,
                        prediction_epochs=3.0, checkpoint_every=1, log_every=1, eval_every=10, seed=3,
                        learning_rate=5e-4)


def run_distill(teacher: str, data: str, out: str, resume: bool, progress: bool = False):
    from tinybert_edge.config import DistillConfig
    from tinybert_edge.data import load_data, split_data
    from tinybert_edge.distillation.task_distillation import distill

    train, dev, _ = split_data(load_data(data))
    output = Path(out)
    return distill(teacher, train, dev, output, DistillConfig(**DISTILL_SETTINGS),
                   work_dir=output.with_name(output.name + ".work"), resume=resume, progress=progress)


def main(argv: list[str]) -> int:
    if argv[0] == "distill":
        import torch

        torch.set_num_threads(1)
        result = run_distill(argv[1], argv[2], argv[3], resume="--resume" in argv)
        print(json.dumps({"dev_accuracy": result.dev_accuracy}))
        return 0
    if argv[0] == "report":
        from tinybert_edge.app.report import write_report

        report = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        for round_number in range(int(argv[3])):
            report["timings_s"]["total_s"] = float(round_number)
            write_report(report, Path(argv[2]))
            print(f"round {round_number}", flush=True)
        return 0
    if argv[0] == "package":
        # Packaged as on a machine without torch (golden.json then lacks the PyTorch cross-check logits): the
        # staging, verification and renames are the same, and a child starts in ~1 s instead of ~15 s of torch import.
        sys.modules["torch"] = None
        from tinybert_edge.app.bundle import package

        for round_number in range(int(argv[3])):
            package(argv[1], argv[2], runtimes=("onnxruntime",), overwrite=True)
            print(f"round {round_number}", flush=True)
        return 0
    raise SystemExit(f"unknown driver {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
