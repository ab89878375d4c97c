"""The converged study's schedule on a GPU, briefly: each NODE variant and the classic 1+1 trained for a few
hundred updates on CUDA by the study runner itself (scripts/study.sh --converged --max-update N), averaged,
translated and scored, then a table of its seconds per update and validation losses beside the CPU
records of the same experiments (benchmarks/results/converged/records).

    scripts/gpu_check.sh [--updates 400] [--work DIR] [--out DIR] [EXPERIMENT ...]

Same schedule, same seed, same data: the validation losses at equal updates should be close to the CPU
run's (not equal: CUDA kernels sum in another order), and the seconds per update say what the study
would cost on this device. Under 10 minutes on one H200-class GPU for the default experiments and 400
updates. Refuses to run without CUDA unless --allow-cpu (then it is a slow functional check).
"""
import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ["transformer_1layer", "node_fast_rk4", "node_separated_aug1", "node_full_tol1e-2"]
CPU_RECORDS = REPO / "benchmarks" / "results" / "converged" / "records"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="scripts/gpu_check.sh", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="*", metavar="EXPERIMENT", default=EXPERIMENTS,
                        help=f"config names or paths (default {' '.join(EXPERIMENTS)})")
    parser.add_argument("--updates", type=int, default=400, help="updates per experiment (default 400)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("NODE_TRANSFORMER_RUNS",
                                                                          Path.home() / "node-transformer-runs")) / "gpu_check",
                        help="run directories (default $NODE_TRANSFORMER_RUNS/gpu_check)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_check",
                        help="records, table and figures (default benchmarks/results/gpu_check)")
    parser.add_argument("--cpu-records", type=Path, default=CPU_RECORDS,
                        help="the records to compare with (default benchmarks/results/converged/records)")
    parser.add_argument("--data", type=Path, default=None, help="binarised Multi30k (default the study's)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA too (a functional check)")
    args = parser.parse_args(argv)
    if args.updates < 1:
        parser.error(f"--updates must be positive, got {args.updates}")
    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        parser.error("no CUDA device here (torch.cuda.is_available() is False); --allow-cpu runs it on the CPU")
    return args


def comparison_rows(records, cpu_records):
    """[experiment, s/update here, s/update CPU, ratio, valid loss here / CPU at each common update]."""
    rows = []
    for name, record in records.items():
        cpu = cpu_records.get(name)
        here_losses = dict(zip(*record.valid.column("loss")))
        cpu_losses = dict(zip(*cpu.valid.column("loss"))) if cpu else {}
        losses = ", ".join(f"{u}: {here_losses[u]:.3f} / {cpu_losses[u]:.3f}" for u in sorted(here_losses)
                           if u in cpu_losses) or "-"
        here, there = record.seconds_per_update, cpu.seconds_per_update if cpu else None
        rows.append([name, f"{here:.3f}" if here else "-", f"{there:.3f}" if there else "-",
                     f"{there / here:.1f}x" if here and there else "-", losses])
    return rows


def device_name():
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (--allow-cpu)"


def main(argv=None):
    args = parse_args(argv)
    import study  # scripts/study.py, beside this file
    from node_experiments.report import Table, publish
    from node_experiments.study_record import read_all

    study_args = ["--converged", "--max-update", str(args.updates), "--average-last", "2", "--work", str(args.work),
                  "--out", str(args.out), *args.experiments] + (["--data", str(args.data)] if args.data else [])
    code = study.main(study_args)
    if code:
        return code
    names = [Path(name).stem for name in args.experiments]
    written = read_all(args.out / study.RECORDS)
    records = {name: written[name] for name in names}
    cpu_records = read_all(args.cpu_records) if args.cpu_records.is_dir() else {}
    table = Table("gpu_check", f"The converged schedule for {args.updates} updates here, beside the CPU records",
                  ["experiment", "s/update here", "s/update CPU", "CPU / here", "valid loss here / CPU (update: ...)"],
                  comparison_rows(records, cpu_records),
                  note=f"Command: scripts/gpu_check.sh --updates {args.updates} {' '.join(args.experiments)}. Device: "
                       f"{device_name()}. CPU records: {args.cpu_records}. The scores of each short run: "
                       f"{args.out / 'study.md'}.")
    publish(table, args.out)
    (args.out / "gpu_check.json").write_text(json.dumps({"updates": args.updates, "rows": table.rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
