"""Packaging beside pyproject.toml for the one thing it cannot say: ``resources/`` stays at the top
of the repository (the product's layout) and is installed as the package ``viewer._resources``
(each sub-folder a data-only package), so a wheel carries it."""

from pathlib import Path

from setuptools import find_packages, setup

RESOURCE_DIRS = sorted(p.name for p in Path(__file__).parent.joinpath("resources").iterdir() if p.is_dir())
RESOURCE_PACKAGES = ["viewer._resources"] + [f"viewer._resources.{d}" for d in RESOURCE_DIRS]

setup(
    packages=find_packages(include=["viewer", "viewer.*", "plugins", "plugins.*"]) + RESOURCE_PACKAGES,
    package_dir={"viewer._resources": "resources"},
    package_data={p: ["*"] for p in RESOURCE_PACKAGES},
)
