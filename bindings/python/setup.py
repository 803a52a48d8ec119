"""Builds the package with the project's own CMake build: no download, no second build system.

    python3 -m pip install --no-build-isolation --no-deps ./bindings/python

CMake configures the whole repository (tests, server and install rules off), builds the one
target `sandbox-python` (the module, the agent and the kernels) and this script copies the
module and the runtime directory into the package (`sandbox/libexec`), so the installed
package works after the build tree is gone. Environment: CMAKE_ARGS (extra -D options),
CMAKE_BUILD_PARALLEL_LEVEL (jobs).
"""

import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
SOURCE_ROOT = HERE.parent.parent


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
        configure = [
            "cmake", "-S", str(SOURCE_ROOT), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
            "-DSANDBOX_BUILD_PYTHON=ON",
            "-DSANDBOX_BUILD_TESTS=OFF",
            "-DSANDBOX_BUILD_BENCH=OFF",
            "-DSANDBOX_BUILD_SERVER=OFF",
            "-DSANDBOX_INSTALL=OFF",
            "-DBUILD_SHARED_LIBS=OFF",  # the wheel carries libsandbox inside its module
        ]
        if shutil.which("ninja") and not (build_dir / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja"]
        configure += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        subprocess.run(configure, check=True)

        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "sandbox-python", "-j", jobs],
                       check=True)

        built = next((build_dir / "python" / "sandbox").glob("_sandbox*.so"))
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, target)

        # The agent and kernels travel with the package; __init__.py points the library at them.
        runtime = target.parent / "libexec"
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.copytree(build_dir / "libexec" / "sandbox", runtime, symlinks=False)


setup(
    packages=["sandbox"],
    package_data={"sandbox": ["__init__.pyi", "py.typed"]},
    ext_modules=[Extension("sandbox._sandbox", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    zip_safe=False,
)
