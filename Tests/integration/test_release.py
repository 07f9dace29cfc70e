"""A package depends on mserve by version, as docs/writing-models.md says: the version the binary
reports is the CHANGELOG's newest and the docs' dependency line, that line resolves against a
release tag, and the package builds (no unsafe flags in what it depends on).  The tag is made in a
scratch clone (a clone for CI may carry no tags), from the same commit."""
import json
import os
import pathlib
import re
import subprocess

from conftest import MSERVE

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def test_the_version_is_the_changelogs_and_the_readmes():
    version = subprocess.run([MSERVE, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
    newest = re.search(r"^## (\d+\.\d+\.\d+) \(\d{4}-\d\d-\d\d\)$", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert version == newest, (version, newest)
    assert f'.package(url: "<mserve\'s repository>", from: "{version}")' in (ROOT / "docs" / "writing-models.md").read_text()


def test_the_documented_dependency_line_resolves_against_a_release_tag(tmp_path):
    version = subprocess.run([MSERVE, "--version"], capture_output=True, text=True, timeout=10).stdout.split()[-1]
    clone = tmp_path / "mserve"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    subprocess.run(["git", "-C", str(clone), "tag", "-f", version], check=True, capture_output=True, timeout=30)
    user = tmp_path / "user"
    (user / "Sources" / "mymodel").mkdir(parents=True)
    # The docs' line, with the repository's address filled in.
    (user / "Package.swift").write_text(f'''// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "user",
    dependencies: [.package(url: "file://{clone}", from: "{version}")],
    targets: [.target(name: "mymodel", dependencies: [.product(name: "MServe", package: "mserve")])]
)
''')
    (user / "Sources" / "mymodel" / "Model.swift").write_text("import MServe\n")
    p = subprocess.run(["swift", "package", "resolve"], cwd=user, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    pins = json.loads((user / "Package.resolved").read_text())["pins"]
    mserve = next(pin for pin in pins if pin["identity"] == "mserve")
    assert mserve["state"]["version"] == version, mserve
    # It builds: SwiftPM refuses unsafe flags in a package resolved by version, so the library a
    # user depends on carries none (this machine's flags are MSERVE_NATIVE's, an opt-in).
    env = {k: v for k, v in os.environ.items() if k != "MSERVE_NATIVE"}
    p = subprocess.run(["swift", "build"], cwd=user, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
