"""Start-up time of `amq send hello x` as a whole process, against `python -c "import typer"`.

The requirement: `amq send hello x` in a fresh virtualenv takes at most 1.3 times the wall
time of `python -c "import typer"` in the same venv, measured in the same run.

What it does:
1. makes a fresh virtualenv in a temporary directory (with the interpreter running this
   script) and installs the project into it, non-editable (`pip install <project root>`);
   `--venv PATH` reuses an existing venv instead (no creation, no install);
2. times, as whole processes (wall time), `python -c pass`, `python -c "import typer"`,
   `amq send hello x` (AMQ_URL=local:<tmpdir>/startup.db) and `amq --help`, interleaved
   in rounds so that machine noise hits all of them alike: 3 warm-up rounds, then
   --rounds counted ones; prints min / median / p90 of each and the amq send / import
   typer ratios beside the 1.3 target (a report only: the exit status is 0 either way);
3. lists the modules `amq send hello x` imports that `import typer` does not (from
   `python -X importtime`), with the 15 largest self times, to find regressions.

Usage: python benchmarks/startup.py [--rounds N] [--venv PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3
WARMUP_ROUNDS = 3
TOP_EXTRA = 15


def make_venv(where: Path) -> Path:
    """A fresh venv at ``where`` with the project installed (non-editable); its path."""
    print(f"creating venv in {where} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    print(f"installing {PROJECT_ROOT} ...", flush=True)
    subprocess.run([str(where / "bin" / "pip"), "install", "--quiet", str(PROJECT_ROOT)],
                   check=True)
    return where


def commands(venv: Path) -> dict[str, list[str]]:
    """The timed commands, by label; the order is the order of the table."""
    python, amq = str(venv / "bin" / "python"), str(venv / "bin" / "amq")
    return {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import typer'": [python, "-c", "import typer"],
        "amq send hello x": [amq, "send", "hello", "x"],
        "amq --help": [amq, "--help"],
    }


def time_once(argv: list[str], env: dict[str, str], cwd: Path, label: str) -> float:
    """Wall time of one run of ``argv`` in ``cwd``, in seconds; fails loudly on an error."""
    start = time.perf_counter()
    code = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - start
    if code != 0:
        sys.exit(f"startup.py: `{label}` exited with {code} (run {' '.join(argv)} to see why)")
    return elapsed


def time_rounds(cmds: dict[str, list[str]], env: dict[str, str], cwd: Path,
                rounds: int) -> dict[str, list[float]]:
    """Run every command once per round, rotating the order; the counted times by label."""
    labels = list(cmds)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for n in range(WARMUP_ROUNDS + rounds):
        shift = n % len(labels)
        for label in labels[shift:] + labels[:shift]:
            elapsed = time_once(cmds[label], env, cwd, label)
            if n >= WARMUP_ROUNDS:
                times[label].append(elapsed)
    return times


def p90(values: list[float]) -> float:
    """The 90th percentile (inclusive method, so it works for a handful of values)."""
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def print_table(times: dict[str, list[float]]) -> None:
    width = max(len(label) for label in times)
    print(f"{'command':<{width}}  {'min':>8}  {'median':>8}  {'p90':>8}   (ms)")
    for label, values in times.items():
        row = [min(values), statistics.median(values), p90(values)]
        print(f"{label:<{width}}  " + "  ".join(f"{v * 1000:8.1f}" for v in row))


def print_ratio(times: dict[str, list[float]]) -> None:
    send, typer = times["amq send hello x"], times["python -c 'import typer'"]
    median_ratio = statistics.median(send) / statistics.median(typer)
    min_ratio = min(send) / min(typer)
    verdict = "ok" if median_ratio <= TARGET else "OVER TARGET"
    print(f"ratio amq send / import typer: median {median_ratio:.2f}  min {min_ratio:.2f}  "
          f"(target <= {TARGET})  {verdict} by median")


def import_times(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, int]:
    """Self import time in microseconds by module, from ``python -X importtime ...``."""
    proc = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"startup.py: {' '.join(argv)} exited with {proc.returncode}:\n"
                 f"{proc.stderr[-2000:]}")
    selfs: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line[len("import time:"):].split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue  # the header line
        selfs[fields[2].strip()] = int(fields[0])
    return selfs


def print_extra_imports(venv: Path, env: dict[str, str], cwd: Path) -> None:
    python = str(venv / "bin" / "python")
    send = import_times([python, "-X", "importtime", "-m", "amqcli", "send", "hello", "x"],
                        env, cwd)
    typer = import_times([python, "-X", "importtime", "-c", "import typer"], env, cwd)
    extra = {name: us for name, us in send.items() if name not in typer}
    total = sum(extra.values())
    print(f"\nmodules imported by `amq send hello x` (python -m amqcli) but not by "
          f"`import typer`: {len(extra)} (of {len(send)} vs {len(typer)}), "
          f"self time {total / 1000:.1f} ms in all; the {TOP_EXTRA} largest:")
    for name, us in sorted(extra.items(), key=lambda item: -item[1])[:TOP_EXTRA]:
        print(f"  {us:8d} us  {name}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30,
                        help=f"counted rounds (after {WARMUP_ROUNDS} warm-up rounds); "
                             "default 30")
    parser.add_argument("--venv", type=Path,
                        help="reuse this venv (with amqcli installed) instead of a fresh one")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="amq-startup-"))
    try:
        venv = args.venv.resolve() if args.venv else make_venv(tmp / "venv")
        if not (venv / "bin" / "amq").exists():
            sys.exit(f"startup.py: {venv}/bin/amq not found: is amqcli installed there?")
        env = dict(os.environ, AMQ_URL=f"local:{tmp}/startup.db")
        env.pop("PYTHONPATH", None)
        # Children run in tmp: from the project root, -m / -c would import the checkout.
        print(f"venv {venv}; {args.rounds} rounds after {WARMUP_ROUNDS} warm-up ones ...\n",
              flush=True)
        times = time_rounds(commands(venv), env, tmp, args.rounds)
        print_table(times)
        print_ratio(times)
        print_extra_imports(venv, env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
