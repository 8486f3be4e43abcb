"""Refresh the web console's third-party browser libraries from the npm registry.

Run by a developer when a library is upgraded (``python -m tools.vendor_static``);
the copied files are committed, so neither installing nor running the relay needs
Node.js or a network. Each library's built files, its licence and a VERSION file
(name, version, tarball integrity) land in ``relay/console/static/vendor/<name>/``.
Needs ``npm`` on the PATH (only ``npm pack`` is used: nothing is installed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs

VENDOR = Path(__file__).resolve().parent.parent / "relay" / "console" / "static" / "vendor"


@attrs.frozen
class Library:
    name: str  # npm package name; also the folder under vendor/
    version: str
    files: tuple[str, ...]  # paths inside the package (under package/), copied flat or by tree


LIBRARIES = (
    Library("uplot", "1.6.32", ("dist/uPlot.iife.min.js", "dist/uPlot.min.css", "LICENSE")),
    Library("leaflet", "1.9.4", (
        "dist/leaflet.js", "dist/leaflet.css", "dist/images/marker-icon.png",
        "dist/images/marker-icon-2x.png", "dist/images/marker-shadow.png",
        "dist/images/layers.png", "dist/images/layers-2x.png", "LICENSE")),
)


def pack(library: Library, workdir: Path) -> tuple[Path, str]:
    """``npm pack`` the exact version; returns the tarball and its integrity string."""
    out = subprocess.run(
        ["npm", "pack", "--json", f"{library.name}@{library.version}",
         "--pack-destination", str(workdir)],
        check=True, capture_output=True, text=True,
    )
    info = json.loads(out.stdout)[0]
    return workdir / info["filename"], info.get("integrity", "")


def install(library: Library, tarball: Path, integrity: str, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for name in library.files:
            member = tar.getmember(f"package/{name}")
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"{library.name}: {name} is not a file")
            # dist/ is dropped, deeper folders (leaflet's images/) kept: leaflet.css
            # refers to images/ next to itself.
            relative = name.removeprefix("dist/")
            dest = target / relative
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(source.read())
    (target / "VERSION").write_text(
        f"{library.name} {library.version}\nfrom the npm registry, integrity {integrity}\n"
        "refresh with: python -m tools.vendor_static\n")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vendor_static", description=__doc__)
    parser.add_argument("--dest", type=Path, default=VENDOR, help="vendor folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        for library in LIBRARIES:
            tarball, integrity = pack(library, Path(tmp))
            install(library, tarball, integrity, args.dest / library.name)
            print(f"{library.name} {library.version} -> {args.dest / library.name}")
    return 0


if __name__ == "__main__":
    sys.exit(run())
