"""Import a script of ``data_scripts/`` (not a package) as a module, for its tests."""

import importlib.util
import sys
from pathlib import Path

DATA_SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"


def load_data_script(name: str):
    """The module of ``data_scripts/<name>.py``, registered in ``sys.modules`` under ``name``."""
    spec = importlib.util.spec_from_file_location(name, DATA_SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
