import importlib
import pkgutil
import subprocess
import sys

import pytest

import clover_pl


def test_every_module_imports() -> None:
    names = [m.name for m in pkgutil.walk_packages(clover_pl.__path__, "clover_pl.") if m.name != "clover_pl.__main__"]
    assert "clover_pl.models.video_swin" in names
    for name in names:
        importlib.import_module(name)


@pytest.mark.slow
def test_timm_and_torchvision_are_never_imported() -> None:
    # Both break on these machines (see the README); nothing on our import path may pull them in.
    code = (
        "import sys, clover_pl.models, clover_pl.cli\n"
        "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
