"""python -m benchmarks.tasks [NAME ...] [--workdir DIR] [--size small|full] [--build-only]"""

import argparse
import sys

from benchmarks.tasks import TASKS
from benchmarks.tasks.common import SIZES
from benchmarks.tasks.runner import markdown_table, run_tasks


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tasks",
        description="Build real public tasks from installed packages (nothing is "
                    "downloaded) and run the kit on each with no flag beyond --data and "
                    "--out: train, export (dynamic_int8), evaluate the bundle and the run. "
                    "Writes WORKDIR/results.json and WORKDIR/results.md.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"tasks to run (default: all): {', '.join(TASKS)}")
    parser.add_argument("--workdir", default="task-runs",
                        help="where each task's files, run and bundle go (default: %(default)s)")
    parser.add_argument("--size", default="full", choices=SIZES,
                        help="full: the benchmark; small: a slice of each task (default: "
                             "%(default)s)")
    parser.add_argument("--build-only", action="store_true",
                        help="only write the TSV files and print their statistics and the "
                             "baselines")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in TASKS]
    if unknown:
        print(f"error: unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}",
              file=sys.stderr)
        return 2
    tasks = [TASKS[name] for name in args.names or TASKS]
    try:
        results = run_tasks(tasks, args.workdir, args.size, build_only=args.build_only)
    except OSError as error:  # an unwritable or full work directory
        print(f"error: {error.strerror or error}: {error.filename or args.workdir}",
              file=sys.stderr)
        return 1
    if not args.build_only:
        print(markdown_table(results))
    print(f"results written to {args.workdir}/results.json", file=sys.stderr)
    return 1 if any("error" in entry for entry in results["tasks"]) else 0


if __name__ == "__main__":
    sys.exit(main())
