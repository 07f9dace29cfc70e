"""The README's setup command, in a scratch clone: a build that fails stops it with the compiler's
errors and a non-zero exit, instead of printing 'built' and serving a stale binary."""
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def test_setup_stops_on_a_compile_error(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    # A leaf module compiled early, so that the build fails fast.
    broken = clone / "Sources" / "MServeJSON" / "JSON.swift"
    broken.write_text(broken.read_text() + "\nthis is not Swift\n")
    p = subprocess.run(["bash", "scripts/setup", "--build"], cwd=clone, capture_output=True, text=True, timeout=1200)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    assert "JSON.swift" in out and "error:" in out, out[-3000:]
    assert "setup: build failed" in out and "setup: built" not in out, out[-3000:]


def test_setup_puts_mserve_on_the_path(tmp_path):
    """The README types `mserve`: setup links it into ~/.local/bin, and says how to reach it when
    that directory is not on the PATH yet."""
    import os
    home = pathlib.Path(os.environ["HOME"])
    path = ":".join(d for d in os.environ["PATH"].split(":") if d != str(home / ".local/bin"))
    p = subprocess.run(["bash", "scripts/setup", "--build"], cwd=ROOT, capture_output=True, text=True, timeout=1200,
                       env=dict(os.environ, PATH=path))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert 'to type mserve in this shell: export PATH="$HOME/.local/bin:$PATH"' in p.stdout, p.stdout
    link = home / ".local/bin/mserve"
    assert link.resolve() == (ROOT / ".build/release/mserve").resolve()
    # The line setup prints makes the README's bare `mserve` work.
    out = subprocess.run(["bash", "-c", 'export PATH="$HOME/.local/bin:$PATH"; mserve --version'], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, PATH=path))
    assert out.returncode == 0 and "mserve" in out.stdout, out
