"""Packaging beyond pyproject.toml: conf/ (the Hydra configs, at the repository's top level)
ships as the package ``mtlface.conf``, so an installed mtlface finds its configs through the
package (``pkg://mtlface.conf``) from any working directory."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mtlface", "mtlface.*"]), "mtlface.conf"],
    package_dir={"mtlface.conf": "conf"},
    package_data={"mtlface.conf": ["*.yaml", "**/*.yaml"]},
)
