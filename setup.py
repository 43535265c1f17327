"""Package list for setuptools: `plugins/` installs as `worldr1_plugins` (metadata lives in pyproject.toml)."""

from setuptools import find_packages, setup

core = find_packages(include=["worldr1_core", "worldr1_core.*"])
shipped = [
    "worldr1_plugins" + name[len("plugins") :]
    for name in find_packages(include=["plugins", "plugins.*"])
]

setup(
    packages=core + shipped,
    package_dir={"worldr1_plugins": "plugins"},
)
