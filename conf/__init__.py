"""The Hydra configs, shipped in the wheel as the package ``mtlface.conf`` (see setup.py)."""
