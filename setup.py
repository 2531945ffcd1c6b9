"""Build hook: generate the gRPC modules from src/bertserve/serving/grpc/protos/*.proto.

Everything else about the package is in pyproject.toml. For a wheel (`pip install .`) the modules
are written into the build folder, for an editable install (`pip install -e .`) into the source
folder (gitignored). If grpcio-tools is missing from the build environment, the step is skipped:
the package generates the modules itself on first import (see the protos package's docstring).
"""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PROTOS = Path(__file__).resolve().parent / "src" / "bertserve" / "serving" / "grpc" / "protos" / "__init__.py"


class build_py_with_protos(build_py):
    def run(self):
        super().run()
        spec = importlib.util.spec_from_file_location("_bertserve_protos", PROTOS)
        protos = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(protos)
        output_root = PROTOS.parents[4] if getattr(self, "editable_mode", False) else Path(self.build_lib)
        try:
            protos.generate(output_root)
        except ImportError as error:
            print(f"bertserve: gRPC modules not generated at build time ({error}); they are generated on first import")


setup(cmdclass={"build_py": build_py_with_protos})
