"""
Packaging and discovery: the wheel ships the dropins and nothing it must not,
and an installed Prism is found by Twisted's plugin system from anywhere.

These catch what Daphne shipped twice (a wheel without its twistd plugin) and
what a default editable install of a flat layout does (a plugin that
C{twistd} cannot see). See STYLE.md section 2.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Things that would make a copied tree differ from a fresh checkout.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "node_modules", "build", "dist", "*.egg-info", "__pycache__",
    ".pytest_cache", ".hypothesis",
)


def _cleanEnv():
    """The environment for a subprocess, without anything that adds to sys.path."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONSTARTUP", None)
    return env


def _runPython(code, cwd):
    """Run C{code} with this interpreter in C{cwd}; return its stdout."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(cwd),
        env=_cleanEnv(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def wheelNames(tmp_path_factory):
    """
    The file names in a wheel built offline from a copy of the checkout.

    The copy keeps setuptools' C{build/} and C{*.egg-info} out of the checkout
    (and stale files in C{build/} out of the wheel); it does include any
    C{dropin.cache} lying in C{twisted/plugins}, which must not be packaged.
    """
    source = tmp_path_factory.mktemp("source") / "prism"
    shutil.copytree(str(ROOT), str(source), ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--disable-pip-version-check", "-q", "-w", str(out), str(source),
        ],
        env=_cleanEnv(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout
    wheels = list(out.glob("prism_realtime-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(str(wheels[0])) as whl:
        return whl.namelist()


def test_wheelShipsDropins(wheelNames):
    assert "twisted/plugins/prism_plugin.py" in wheelNames
    assert "twisted/plugins/prism_builtins.py" in wheelNames
    assert "prism/__init__.py" in wheelNames
    assert "prism/interfaces.py" in wheelNames


def test_wheelShipsEveryPrismModule(wheelNames):
    """Every module under prism/ (subpackages too) is in the wheel."""
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "prism").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert expected - set(wheelNames) == set()


def test_wheelShipsTheJavaScriptClient(wheelNames):
    """prism/js/*.js is package data: the client builder reads it from the wheel."""
    expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / "prism" / "js").glob("*.js")}
    assert {"prism/js/core.js", "prism/js/websocket.js", "prism/js/rpc.js"} <= expected
    assert expected - set(wheelNames) == set()


def test_wheelShipsTheStatusPage(wheelNames):
    """prism/static/status.html is package data: prism.status reads it from the wheel."""
    assert "prism/static/status.html" in wheelNames


def test_wheelLeavesOutWhatMustNotShip(wheelNames):
    assert "twisted/__init__.py" not in wheelNames
    assert "twisted/plugins/__init__.py" not in wheelNames
    assert [n for n in wheelNames if n.endswith("dropin.cache")] == []
    for top in ("tests/", "examples/", "docs/", "benchmarks/", "scripts/"):
        assert [n for n in wheelNames if n.startswith(top)] == [], top
    # Only prism/, twisted/plugins/ and the metadata.
    tops = {n.split("/")[0] for n in wheelNames}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"prism", "twisted"}
    assert {n for n in wheelNames if n.startswith("twisted/")} == {
        n for n in wheelNames if n.startswith("twisted/plugins/prism_")
    }


def test_sourceTreeHasNoTwistedInit():
    """Our twisted/ and twisted/plugins/ would shadow Twisted's own."""
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()


def test_discovery(tmp_path):
    """
    The installed project is found by getPlugins, with the checkout not on
    sys.path through the working directory.
    """
    out = _runPython(
        "\n".join([
            "import json, sys",
            "from twisted.plugin import getPlugins",
            "from twisted.application.service import IServiceMaker",
            "from prism._plugins import Registry",
            "print(json.dumps({",
            "    'taps': [p.tapname for p in getPlugins(IServiceMaker)],",
            "    'service': Registry('service').names(),",
            "    'transport': Registry('transport').names(),",
            "    'session_store': Registry('session_store').names(),",
            "}))",
        ]),
        cwd=tmp_path,
    )
    found = json.loads(out.splitlines()[-1])
    assert "prism" in found["taps"]
    assert {"echo", "rpc"} <= set(found["service"])
    assert {"websocket", "loopback"} <= set(found["transport"])
    assert "memory" in found["session_store"]


def _script(name):
    """An entry-point script installed beside this interpreter."""
    path = Path(sys.executable).parent / name
    assert path.exists(), "{} is not installed beside {}".format(name, sys.executable)
    return str(path)


@pytest.mark.parametrize("runner", ["twistd", "twist"])
def test_runnerListsPrism(runner, tmp_path):
    result = subprocess.run(
        [_script(runner), "--help"],
        cwd=str(tmp_path),
        env=_cleanEnv(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        universal_newlines=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    commands = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert "prism" in commands, result.stdout


def test_importingDropinsIsCheap(tmp_path):
    """
    Importing the dropins and what they import installs no reactor and does
    not import txredisapi (which would install the default reactor, breaking
    C{--reactor}).
    """
    out = _runPython(
        "\n".join([
            "import json, sys",
            "import twisted.plugins.prism_plugin, twisted.plugins.prism_builtins",
            "import prism, prism.interfaces, prism.plugin, prism._plugins",
            "print(json.dumps(sorted(m for m in ('twisted.internet.reactor', 'txredisapi')",
            "                        if m in sys.modules)))",
        ]),
        cwd=tmp_path,
    )
    assert json.loads(out.splitlines()[-1]) == []


def test_dropinCacheIsIgnored():
    # Read .gitignore directly: it must work in a checkout and in an export.
    patterns = (ROOT / ".gitignore").read_text().split()
    assert "dropin.cache" in patterns, ".gitignore does not list dropin.cache"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return
    result = subprocess.run(
        ["git", "check-ignore", "-q", "twisted/plugins/dropin.cache"],
        cwd=str(ROOT),
    )
    assert result.returncode == 0, "twisted/plugins/dropin.cache is not git-ignored"
