"""Download datasets into datasets_cache/, or seed the cache from a local folder.

    uv run python tools/fetch_datasets.py tinyshakespeare sst2 multi30k
    uv run python tools/fetch_datasets.py --from ../shared/data tinyshakespeare sst2 multi30k
    uv run python tools/fetch_datasets.py --list

Every file is checked against the sha256 in the registry (shared/src/shared/datasets.py) before
it enters the cache. `--from DIR` reads DIR/<name>/<file>, the layout of the cache itself.
sst2 downloads GLUE's SST-2.zip (train 67,349 rows, dev 872); the project mirror's sst2 holds
64,349 of GLUE's training rows (the figures in the READMEs come from those) and the same dev set.
"""

import argparse
import sys
from pathlib import Path

from shared import datasets
from shared.commands import report_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="datasets to fetch (default: all)")
    parser.add_argument("--from", dest="source", type=Path, help="copy from this folder instead")
    parser.add_argument("--list", action="store_true", help="list the registry and exit")
    args = parser.parse_args()

    if args.list:
        for spec in datasets.REGISTRY.values():
            print(f"{spec.name:16} {spec.description}\n{'':16} source: {spec.source}")
        return 0

    def fetch() -> None:
        for name in args.names or list(datasets.REGISTRY):
            folder = datasets.locate(name, mirror=args.source)
            files = sorted(p.name for p in folder.glob("*") if p.is_file())
            note = f"{', '.join(files)} verified in {folder}" if files else "built on demand"
            print(f"{name}: {note}")

    return report_errors(fetch)


if __name__ == "__main__":
    sys.exit(main())
