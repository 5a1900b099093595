"""Packaging beyond pyproject.toml: the repository's conf/ and data_modules/ ship inside the package.

They are installed as ``clover_pl/conf`` and ``clover_pl/data_modules`` (every YAML file, and the dataset cards'
README files), so that ``clover-pl fit --config quickstart`` works after ``pip install`` (see clover_pl.configs).
Metadata, dependencies and tools stay in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "clover_pl.conf", "clover_pl.data_modules"],
    package_dir={"": "src", "clover_pl.conf": "conf", "clover_pl.data_modules": "data_modules"},
    package_data={"clover_pl.conf": ["**/*.yaml"], "clover_pl.data_modules": ["**/*.yaml", "**/*.md"]},
)
