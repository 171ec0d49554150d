"""Kube Toolbox library: config, grid, commands, names, local runs, rendering and the cluster gateway."""
