"""The package on its own: --version, shipped configs found by name from any folder, LICENSE, no unshipped docs cited,
and (slow) the built wheel installed into a fresh virtual environment running the quickstart from an empty folder."""

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import clover_pl
from clover_pl.cli import main
from clover_pl.configs import find_config, resolve_config_arguments

ROOT = Path(__file__).parents[1]


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out == f"clover-pl {clover_pl.__version__}\n"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{clover_pl.__version__}"' in pyproject


def test_shipped_configs_are_found_by_name() -> None:
    quickstart = str(ROOT / "conf" / "quickstart.yaml")
    for name in ("quickstart", "quickstart.yaml", "conf/quickstart.yaml", "./conf/quickstart"):
        assert find_config(name) == quickstart, name
    assert find_config("retrieval/msrvtt") == str(ROOT / "conf" / "retrieval" / "msrvtt.yaml")
    assert find_config("data_modules/msrvtt/msrvtt.yaml") == str(ROOT / "data_modules" / "msrvtt" / "msrvtt.yaml")
    assert find_config("no_such_config") is None
    args = ["fit", "--config", "quickstart", "--config=debug/tiny", "--trainer.max_steps=3"]
    assert resolve_config_arguments(args) == [
        "fit",
        "--config",
        quickstart,
        f"--config={ROOT / 'conf' / 'debug' / 'tiny.yaml'}",
        "--trainer.max_steps=3",
    ]


def test_a_local_file_wins_over_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("quickstart.yaml").write_text("seed_everything: 7\n")
    assert resolve_config_arguments(["fit", "--config=quickstart.yaml"]) == ["fit", "--config=quickstart.yaml"]
    assert resolve_config_arguments(["fit", "--config=quickstart"])[1] == f"--config={ROOT / 'conf/quickstart.yaml'}"


def test_shipped_configs_run_from_an_empty_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit", "--config=retrieval/synthetic", "--config=debug/tiny", "--print_config"])
    printed = capsys.readouterr().out
    assert "class_path: clover_pl.tasks.RetrievalTask" in printed
    assert "class_path: clover_pl.models.VideoSwinTransformer" in printed  # its relative backbone file resolved
    assert "max_steps: 2" in printed


def test_configs_lists_what_is_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["configs"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "conf/quickstart.yaml" in listed
    assert "data_modules/webvid/webvid.yaml" in listed
    assert len(listed) == len(list((ROOT / "conf").rglob("*.yaml"))) + len(
        list((ROOT / "data_modules").rglob("*.yaml"))
    )


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()


CITATION = re.compile(r"spec/|\bspec\s*(§|\d|section)|formats\.md|clover\.md")


def test_no_message_cites_a_document_the_user_does_not_have() -> None:
    # Every string in the code that is not a docstring can reach a user (errors, help, reports, logs).
    found = []
    for path in sorted((ROOT / "src" / "clover_pl").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings and CITATION.search(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:80]}")
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "data_modules").rglob("*"))]
    for path in documents:  # the README is the package's description; the dataset cards ship in the wheel
        if path.is_file() and CITATION.search(path.read_text()):
            found.append(str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_runs_the_quickstart_from_an_empty_folder(tmp_path: Path) -> None:
    """Build the wheel (offline, no build isolation), install it into a fresh venv without dependencies (they come
    from this environment's site-packages through a .pth file), then from an empty folder: --version, prepare the
    synthetic data, fit the shipped quickstart config for a few steps, load the checkpoint in Python."""
    source = tmp_path / "source"
    top_level = {".venv", ".git", "outputs", "data", "build", "dist", "lightning_logs"}

    def ignored(folder: str, names: list[str]) -> set[str]:
        skip = {name for name in names if name == "__pycache__" or name.endswith((".egg-info", "_cache"))}
        return skip | (top_level & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, source, ignore=ignored)
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        env=environment,
        timeout=300,
    )
    (wheel,) = wheels.glob("clover_pl-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Dependencies (torch, lightning, ...) from this environment, after the venv's own site-packages.
    Path(site, "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        env=environment,
        timeout=300,
    )
    work = tmp_path / "empty"
    work.mkdir()
    clover = str(venv / "bin" / "clover-pl")

    def cli(*args: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [clover, *args], cwd=work, env=environment, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    assert cli("--version").stdout.strip() == f"clover-pl {clover_pl.__version__}"
    cli("prepare", "synthetic", "--out", "data/synthetic")
    cli("fit", "--config", "quickstart", "--config", "debug/tiny", "--trainer.max_steps=3")
    checkpoint = work / "outputs" / "quickstart" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    probe = (
        "import clover_pl, sys; backbone, heads = clover_pl.load_checkpoint(sys.argv[1]); "
        "print(clover_pl.__file__); print(sorted(heads))"
    )
    result = subprocess.run(
        [python, "-c", probe, str(checkpoint)], cwd=work, env=environment, capture_output=True, text=True, check=True
    )
    installed, heads = result.stdout.splitlines()
    assert installed.startswith(site)  # the wheel's copy, not the checkout's
    assert heads == "['fused_heads', 'heads', 'mlm_head']"
