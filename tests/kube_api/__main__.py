"""`python -m tests.kube_api --port N`: serve until stopped."""
from tests.kube_api.server import main

main()
