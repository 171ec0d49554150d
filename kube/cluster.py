"""The only module that talks to Kubernetes: one gateway for every request, and the operations on it."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import ClusterError

RETRY_STATUSES = (429, 500, 502, 503, 504)
KINDS = {"Job": ("batch", "jobs"), "Pod": ("core", "pods"), "Secret": ("core", "secrets"),
         "ConfigMap": ("core", "configmaps"), "Event": ("core", "events"), "Node": ("core", "nodes")}


class NotFound(ClusterError):
    pass


class AlreadyExists(ClusterError):
    pass


def _kubeconfig_path() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


class Gateway:
    """Every API request goes through `call`: retries on 429/5xx, errors mapped to one-line ClusterErrors."""

    def __init__(self, namespace: str, workers: int = 8, retries: int = 4, backoff: float = 0.25) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        self.namespace = namespace
        self.retries, self.backoff = retries, backoff
        self.calls = 0
        self._lock = threading.Lock()
        configuration = client.Configuration()
        path = _kubeconfig_path()
        try:
            if path:
                config.load_kube_config(config_file=path, client_configuration=configuration)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                raise ClusterError("no kubeconfig: set KUBECONFIG or create ~/.kube/config "
                                   "(or run inside a cluster)", status=None)
        except (ConfigException, OSError, ValueError) as err:
            raise ClusterError(f"kubeconfig {path or '(in-cluster)'}: {str(err).splitlines()[0]}") from None
        configuration.retries = 0                        # our own retry loop decides
        configuration.connection_pool_maxsize = max(workers, 4)
        self.host = configuration.host
        self.api = client.ApiClient(configuration)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self._api_exception = client.ApiException

    def call(self, what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run one API method; `what` names the object in error messages ("create Job 'x'")."""
        import urllib3
        for attempt in range(self.retries + 1):
            with self._lock:
                self.calls += 1
            try:
                return fn(*args, **kwargs)
            except self._api_exception as err:
                if err.status in RETRY_STATUSES and attempt < self.retries:
                    delay = self.backoff * 2 ** attempt
                    retry_after = (err.headers or {}).get("Retry-After") if err.headers else None
                    if retry_after and str(retry_after).isdigit():
                        delay = min(float(retry_after), 5.0)
                    time.sleep(delay)
                    continue
                raise self._error(what, err) from None
            except (urllib3.exceptions.HTTPError, OSError) as err:
                raise ClusterError(f"cannot reach the Kubernetes API server at {self.host} ({what}): "
                                   f"{type(err).__name__}") from None
        raise AssertionError("unreachable")

    def _error(self, what: str, err: Any) -> ClusterError:
        try:
            body = json.loads(err.body or "{}")
        except (TypeError, ValueError):
            body = {}
        message = body.get("message") or err.reason or ""
        status = err.status
        if status == 404:
            return NotFound(f"{what}: not found", status)
        if status == 409:
            return AlreadyExists(f"{what}: already exists", status)
        if status == 401:
            return ClusterError(f"{what}: unauthorized: the kubeconfig credentials were refused", status)
        if status == 403 and "exceeded quota" in message:
            return ClusterError(f"{what}: quota exceeded in namespace {self.namespace}: {message}", status)
        if status == 403:
            return ClusterError(f"{what}: forbidden in namespace {self.namespace} (RBAC): {message}", status)
        if status == 422:
            causes = (body.get("details") or {}).get("causes") or []
            fields = "; ".join(f"{c.get('field')}: {c.get('message')}" for c in causes if c.get("field"))
            return ClusterError(f"{what}: invalid: {fields or message}", status)
        return ClusterError(f"{what}: API error {status}: {message}", status)

    # Raw JSON lists: one call per kind, dicts shaped exactly as the API server sends them.
    def list(self, kind: str, selector: str | None = None, namespaced: bool = True) -> list[dict]:
        group, plural = KINDS[kind]
        api = self.batch if group == "batch" else self.core
        method = getattr(api, f"list_namespaced_{_snake(kind)}" if namespaced else f"list_{_snake(kind)}")
        kwargs = {"label_selector": selector} if selector else {}
        args = (self.namespace,) if namespaced else ()
        response = self.call(f"list {plural}", method, *args, _preload_content=False, **kwargs)
        return json.loads(response.data).get("items") or []

    def create(self, manifest: Mapping[str, Any]) -> dict:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        api = self.batch if KINDS[kind][0] == "batch" else self.core
        method = getattr(api, f"create_namespaced_{_snake(kind)}")
        response = self.call(f"create {kind} '{name}'", method, self.namespace, manifest, _preload_content=False)
        return json.loads(response.data)

    def delete(self, kind: str, name: str) -> None:
        api = self.batch if KINDS[kind][0] == "batch" else self.core
        method = getattr(api, f"delete_namespaced_{_snake(kind)}")
        self.call(f"delete {kind} '{name}'", method, name, self.namespace, propagation_policy="Background",
                  _preload_content=False)

    def logs(self, pod: str, tail: int | None = None, follow: bool = False) -> Any:
        kwargs: dict[str, Any] = {"container": "main"}
        if tail is not None:
            kwargs["tail_lines"] = tail
        if follow:
            kwargs["follow"] = True
            return self.call(f"logs of pod '{pod}'", self.core.read_namespaced_pod_log, pod, self.namespace,
                             _preload_content=False, **kwargs)
        return self.call(f"logs of pod '{pod}'", self.core.read_namespaced_pod_log, pod, self.namespace, **kwargs)


def _snake(kind: str) -> str:
    return {"ConfigMap": "config_map"}.get(kind, kind.lower())


def ensure(gw: Gateway, manifest: Mapping[str, Any]) -> bool:
    """Create a content-addressed object (Secret, ConfigMap); an existing one is identical by its name."""
    try:
        gw.create(manifest)
        return True
    except AlreadyExists:
        return False


def create_or_replace(gw: Gateway, manifest: Mapping[str, Any], replace: bool, wait: float = 60.0) -> str:
    """Create a Job; for a replacement delete the old one first and retry while it is still terminating."""
    name = manifest["metadata"]["name"]
    if replace:
        try:
            gw.delete("Job", name)
        except NotFound:
            pass
    deadline = time.monotonic() + wait
    while True:
        try:
            gw.create(manifest)
            return "replaced" if replace else "created"
        except AlreadyExists:
            if _is_ours(gw, manifest):      # an earlier attempt went through before a 5xx/timeout
                return "replaced" if replace else "created"
            if not replace or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _is_ours(gw: Gateway, manifest: Mapping[str, Any]) -> bool:
    """Does the existing Job carry this manifest's spec hash (and is it not being deleted)?"""
    from .render import ANNOTATION_SPEC
    name = manifest["metadata"]["name"]
    try:
        response = gw.call(f"get Job '{name}'", gw.batch.read_namespaced_job, name, gw.namespace,
                           _preload_content=False)
    except NotFound:
        return False
    meta = json.loads(response.data).get("metadata") or {}
    return not meta.get("deletionTimestamp") and \
        (meta.get("annotations") or {}).get(ANNOTATION_SPEC) == manifest["metadata"]["annotations"][ANNOTATION_SPEC]


def copy_files(gw: Gateway, pod: str, project: Any, files: list[str]) -> None:
    """Send the files as a tar stream to `tar x` in the pod's checkout, through the exec API (kubectl cp's way)."""
    import io
    import tarfile

    from kubernetes.stream import stream

    phase = ((gw.call(f"get pod '{pod}'", gw.core.read_namespaced_pod, pod, gw.namespace,
                      _preload_content=False)).json().get("status") or {}).get("phase")
    if phase != "Running":
        raise ClusterError(f"pod '{pod}' is {phase or 'not running'}; expected Running (copy needs a live pod)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            tar.add(str(project.root / path), arcname=path)
    resp = gw.call(f"exec in pod '{pod}'", stream, gw.core.connect_get_namespaced_pod_exec, pod, gw.namespace,
                   command=["tar", "xmf", "-", "-C", f"/workspace/{project.project_name}"], container="main",
                   stdin=True, stdout=True, stderr=True, tty=False, binary=True, _preload_content=False)
    resp.write_stdin(buffer.getvalue())
    resp.close_channel(0)                      # end of stdin (v5); on v4 servers closing the socket ends it
    resp.run_forever(timeout=60)
    error = resp.read_channel(3)
    resp.close()
    if error:
        result = json.loads(error)
        if result.get("status") != "Success":
            raise ClusterError(f"copy into pod '{pod}' failed: {result.get('message') or result}")
