"""The project package is config/, never platform/: the standard library owns that name."""

import platform
import sysconfig
from pathlib import Path


def test_it_keeps_the_standard_library_platform_module():
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert platform.system()


def test_it_has_no_platform_package_in_the_project():
    root = Path(__file__).resolve().parent.parent
    assert not (root / "platform").exists() and not (root / "platform.py").exists()
