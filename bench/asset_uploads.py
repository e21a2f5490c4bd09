"""Asset count and upload size of a synthesized stage: what ``cdk deploy`` uploads, and what one
change re-uploads.

``.venv/bin/python bench/asset_uploads.py cdk.out/dev`` reads the cloud assembly's asset manifests
(``*.assets.json``), zips every file asset's folder as the CDK CLI does (deflate level 6) and prints,
per asset, its zipped size and the functions and layers that use it (from the templates), then the
totals. README "Code locality" shows the shipped stage before and after one asset per task module.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT)]

from bench.packaging_bench import zipped_size  # noqa: E402


def users(assembly: Path) -> dict[str, list[str]]:
    """Asset hash → the functions and layers (by construct path) whose code it is."""
    found: dict[str, list[str]] = defaultdict(list)
    for template in sorted(assembly.glob("*.template.json")):
        for body in json.loads(template.read_text(encoding="utf-8")).get("Resources", {}).values():
            code = (body.get("Properties") or {}).get("Code") or (body.get("Properties") or {}).get("Content")
            if isinstance(code, dict) and isinstance(code.get("S3Key"), str):
                path = (body.get("Metadata") or {}).get("aws:cdk:path", "?").split("/")
                found[code["S3Key"].removesuffix(".zip")].append("/".join(path[1:-1]))
    return found


def report(assembly: Path) -> list[str]:
    used = users(assembly)
    lines = ["| asset | zipped | used by |", "|---|---|---|"]
    total = 0
    for manifest in sorted(assembly.glob("*.assets.json")):
        for asset_id, asset in json.loads(manifest.read_text(encoding="utf-8")).get("files", {}).items():
            folder = assembly / asset["source"]["path"]
            if not folder.is_dir() or asset_id not in used:
                continue
            size = zipped_size(folder)
            total += size
            names = used[asset_id]
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"| `{asset_id[:12]}` | {size / 1e6:.1f} MB | {shown} |")
    lines.append(f"| **{len(lines) - 2} assets** | **{total / 1e6:.1f} MB** | |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("assembly", type=Path, help="a cloud assembly folder (cdk synth -o DIR)")
    print("\n".join(report(parser.parse_args(argv).assembly)))


if __name__ == "__main__":
    main()
