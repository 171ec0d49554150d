"""Kubernetes test API server (kmock emulator, extended) and kubeconfig fixtures."""
