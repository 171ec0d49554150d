"""Kube Toolbox: imported as `toolbox` when this checkout sits at `src/toolbox` of a project."""
