"""The only module that talks to Kubernetes: one Gateway for every request (timeouts, retries, one-line errors)."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import AlreadyExists, ClusterError, NotFound
from .settings import ObjectKind, Project

RETRY_STATUSES = (429, 500, 502, 503, 504)
PAGE = 500                     # items per list page, as kubectl asks
KINDS: dict[str, tuple[str, str, str]] = {     # kind -> (api, plural, snake_case name in the client's methods)
    "Job": ("batch", "jobs", "job"), "Pod": ("core", "pods", "pod"), "Secret": ("core", "secrets", "secret"),
    "ConfigMap": ("core", "configmaps", "config_map"), "Event": ("core", "events", "event"),
    "Node": ("core", "nodes", "node")}


def kubeconfig_path() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


class Gateway:
    """Every API request goes through `call`: a connect and a read timeout on each, retries bounded in time."""

    def __init__(self, namespace: str, workers: int = 8, timeout: float = 30.0, connect_timeout: float = 10.0,
                 retry_seconds: float = 60.0, backoff: float = 0.25) -> None:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        self.namespace = namespace
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retry_seconds, self.backoff = retry_seconds, backoff
        self.calls = 0
        self._lock = threading.Lock()
        configuration = client.Configuration()
        path = kubeconfig_path()
        try:
            if path:
                config.load_kube_config(config_file=path, client_configuration=configuration)
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                raise ClusterError("no kubeconfig: set KUBECONFIG or create ~/.kube/config "
                                   "(or run inside a cluster)", status=None)
        except (ConfigException, OSError, ValueError) as err:
            raise ClusterError(f"kubeconfig {path or '(in-cluster)'}: {str(err).splitlines()[0]}") from err
        configuration.retries = 0                        # our own retry loop decides
        configuration.connection_pool_maxsize = max(workers, 4)
        self.host = configuration.host
        self._client = client.ApiClient(configuration)
        self._apis = {"batch": client.BatchV1Api(self._client), "core": client.CoreV1Api(self._client)}
        self._api_exception = client.ApiException

    @classmethod
    def for_project(cls, project: Project, workers: int = 8) -> Gateway:
        return cls(project.namespace, workers=workers, timeout=project.api_timeout,
                   connect_timeout=project.api_connect_timeout, retry_seconds=project.api_retry_seconds)

    def call(self, what: str, fn: Callable, *args: Any, _stream: bool = False, **kwargs: Any) -> Any:
        """Run one API method; `what` names the object in error messages ("create Job 'x'")."""
        import urllib3
        kwargs["_request_timeout"] = (self.connect_timeout, None if _stream else self.timeout)
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            with self._lock:
                self.calls += 1
            try:
                return fn(*args, **kwargs)
            except self._api_exception as err:
                if err.status not in RETRY_STATUSES:
                    raise self._error(what, err) from err
                retry_after = (err.headers or {}).get("Retry-After") if err.headers else None
                delay = min(float(retry_after), 5.0) if retry_after and str(retry_after).isdigit() else None
                failure: ClusterError = self._error(what, err)
                cause: Exception = err
            except (urllib3.exceptions.HTTPError, OSError) as err:
                delay, cause = None, err
                failure = ClusterError(f"cannot reach the Kubernetes API server at {self.host} ({what}): "
                                       f"{self._describe(err)}")
            delay = self.backoff * 2 ** min(attempt, 5) if delay is None else delay
            if time.monotonic() + delay > deadline:
                raise failure from cause
            attempt += 1
            time.sleep(delay)

    def _describe(self, err: Exception) -> str:
        import urllib3
        text = str(err)
        if isinstance(err, urllib3.exceptions.ReadTimeoutError) or "Read timed out" in text:
            return f"no answer within {self.timeout:g} s (api_timeout), retried for {self.retry_seconds:g} s"
        if isinstance(err, urllib3.exceptions.ConnectTimeoutError) or "timed out" in text:
            return f"no connection within {self.connect_timeout:g} s (api_connect_timeout)"
        if "refused" in text:
            return "connection refused"
        return type(err).__name__

    def _error(self, what: str, err: Any) -> ClusterError:
        try:
            body = json.loads(err.body or "{}")
        except (TypeError, ValueError):
            body = {}
        message = (body.get("message") if isinstance(body, dict) else None) or err.reason or ""
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
            causes = (body.get("details") or {}).get("causes") or [] if isinstance(body, dict) else []
            fields = "; ".join(f"{c.get('field')}: {c.get('message')}" for c in causes if c.get("field"))
            return ClusterError(f"{what}: invalid: {fields or message}", status)
        return ClusterError(f"{what}: API error {status}: {message}", status)

    def _method(self, verb: str, kind: ObjectKind, namespaced: bool = True) -> Callable:
        api, _, snake = KINDS[kind]
        return getattr(self._apis[api], f"{verb}_namespaced_{snake}" if namespaced else f"{verb}_{snake}")

    def get(self, kind: ObjectKind, name: str) -> dict:
        response = self.call(f"get {kind} '{name}'", self._method("read", kind), name, self.namespace,
                             _preload_content=False)
        return json.loads(response.data)

    def list(self, kind: ObjectKind, selector: str | None = None, field_selector: str | None = None,
             namespaced: bool = True) -> list[dict]:
        """Every object of a kind (one call per page of 500), as the API server sends them."""
        method = self._method("list", kind, namespaced)
        args = (self.namespace,) if namespaced else ()
        items: list[dict] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"limit": PAGE}
            if selector:
                kwargs["label_selector"] = selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            if token:
                kwargs["_continue"] = token
            response = self.call(f"list {KINDS[kind][1]}", method, *args, _preload_content=False, **kwargs)
            page = json.loads(response.data)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def create(self, manifest: Mapping[str, Any]) -> dict:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        response = self.call(f"create {kind} '{name}'", self._method("create", kind), self.namespace, manifest,
                             _preload_content=False)
        return json.loads(response.data)

    def delete(self, kind: ObjectKind, name: str, uid: str | None = None) -> None:
        """Delete (its pods with a Job, in the background); `uid` makes sure it is the object that was checked."""
        from kubernetes import client
        extra = {"body": client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))} if uid else {}
        self.call(f"delete {kind} '{name}'", self._method("delete", kind), name, self.namespace,
                  propagation_policy="Background", _preload_content=False, **extra)

    def logs(self, pod: str, tail: int | None = None, follow: bool = False, container: str = "main") -> Any:
        """The text of a pod's log; with follow, an iterator of text chunks until the container ends."""
        kwargs: dict[str, Any] = {"container": container}
        if tail is not None:
            kwargs["tail_lines"] = tail
        if not follow:
            return self.call(f"logs of pod '{pod}'", self._apis["core"].read_namespaced_pod_log, pod,
                             self.namespace, **kwargs)
        response = self.call(f"logs of pod '{pod}'", self._apis["core"].read_namespaced_pod_log, pod,
                             self.namespace, follow=True, _preload_content=False, _stream=True, **kwargs)
        return _chunks(response)

    def exec(self, pod: str, command: list[str], stdin: bytes = b"", container: str = "main",
             timeout: float = 60.0) -> dict:
        """Run a command in a pod through the exec websocket (stdin then EOF); the status channel as a dict."""
        from kubernetes.stream import stream

        resp = self.call(f"exec in pod '{pod}'", stream, self._apis["core"].connect_get_namespaced_pod_exec, pod,
                         self.namespace, command=command, container=container, stdin=True, stdout=True,
                         stderr=True, tty=False, binary=True, _preload_content=False)
        try:
            resp.write_stdin(stdin)
            resp.close_channel(0)              # end of stdin (v5); on v4 servers closing the socket ends it
            resp.run_forever(timeout=timeout)
            error = resp.read_channel(3)
        finally:
            resp.close()
        return json.loads(error) if error else {}


def _chunks(response: Any) -> Iterator[str]:
    for chunk in response.stream(1024):
        yield chunk.decode(errors="replace")
