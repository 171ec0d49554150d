"""Test Kubernetes API server: kmock's KubernetesEmulator extended with what the toolbox's flows need.

Run in its own process (`python -m tests.kube_api --port N`): kmock keeps every request, so a long session in the
test process would slow down. Added here: label/field selectors, deletecollection, a Job's pods deleted with it,
uid/resourceVersion/creationTimestamp, pod logs, fault injection and a request log under /_test/.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import re
import uuid
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import enums, references

RESOURCES = [("batch", "v1", "jobs"), ("", "v1", "pods"), ("", "v1", "secrets"), ("", "v1", "configmaps"),
             ("", "v1", "events"), ("", "v1", "nodes")]
_REQ = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=|\s+in\s+|\s+notin\s+)?\s*(.*?)\s*$")


def _split_selector(selector: str) -> list[str]:
    """Split on commas outside parentheses: `a=b,c in (x,y)`."""
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in parts + [current] if p.strip()]


def matches_labels(labels: dict[str, str], selector: str | None) -> bool:
    for term in _split_selector(selector or ""):
        term = term.strip()
        if term.startswith("!"):
            if term[1:].strip() in labels:
                return False
            continue
        m = _REQ.match(term)
        if not m:
            raise ValueError(f"bad selector term {term!r}")
        key, op, value = m.group(1), (m.group(2) or "").strip(), m.group(3)
        if not op:
            if key not in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        else:
            values = {v.strip() for v in value.strip("()").split(",")}
            if op == "in" and labels.get(key) not in values:
                return False
            if op == "notin" and labels.get(key) in values:
                return False
    return True


def matches_fields(obj: dict, selector: str | None) -> bool:
    for term in _split_selector(selector or ""):
        key, op, value = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term).groups()
        current: Any = obj
        for part in key.split("."):
            current = (current or {}).get(part) if isinstance(current, dict) else None
        if (op == "!=") == (str(current) == value if current is not None else value == ""):
            return False
    return True


class Emulator(kmock.KubernetesEmulator):
    """The emulator plus the behaviour the toolbox relies on."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.log: list[dict] = []
        self.faults: list[dict] = []
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.controller = False
        self.version = 0
        self.latency = 0.0
        import tempfile
        from pathlib import Path
        self.files = Path(tempfile.mkdtemp(prefix="kube-api-pods-"))

    def _get_resources(self) -> list:
        return list({*super()._get_resources(), *(references.resource(g, v, p) for g, v, p in RESOURCES)})

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        path = request.url.path
        if path.startswith("/_test/"):
            return await self._control(path[len("/_test/"):], request)
        if self.latency:
            await asyncio.sleep(self.latency)        # a remote API server's round trip (benchmarks only)
        self.log.append({"method": str(request.method.value if hasattr(request.method, "value") else request.method).upper(),
                         "path": path, "query": dict(request.params)})
        for fault in self.faults:
            if fault["times"] > 0 and fault["method"] == self.log[-1]["method"] and re.search(fault["path"], path):
                fault["times"] -= 1
                return aiohttp.web.json_response(fault["body"], status=fault["status"], headers=fault["headers"])
        if path.endswith("/exec") and request.resource is not None:
            return await self._exec(request)
        if path == "/version":
            return aiohttp.web.json_response({"major": "1", "minor": "34", "gitVersion": "v1.34.0-kmock"})
        if request.resource is not None and request.subresource == "log":
            text = self.pod_logs.get((request.namespace, request.name), "")
            tail = request.params.get("tailLines")
            if tail is not None:
                text = "".join(text.splitlines(keepends=True)[-int(tail):])
            return aiohttp.web.Response(text=text, content_type="text/plain")
        if request.resource is not None and request.action == enums.action.CREATE and isinstance(request.data, dict):
            self._stamp(request.data, request.namespace)
        if request.resource is not None and request.action == enums.action.DELETE and request.name is None:
            return await self._delete_collection(request)
        if request.resource is not None and request.action == enums.action.UPDATE and isinstance(request.data, dict):
            self.version += 1
            request.data.setdefault("metadata", {})["resourceVersion"] = str(self.version)
        try:
            response = await super()._handle(request)
        finally:
            # kmock keeps every request and scans them on each new one (quadratic over a session):
            # keep a window larger than the concurrency we use (8), so in-flight requests stay known.
            del self._requests[:-12]
        if request.resource is not None and request.action == enums.action.CREATE and response.status < 300 \
                and request.resource.plural == "jobs" and self.controller:
            await self._spawn_pod(request.data)
        if request.resource is not None and request.action == enums.action.DELETE and request.name \
                and request.resource.plural == "jobs" and response.status < 300:
            await self._delete_pods_of(request.namespace, request.name)
        return response

    async def _exec(self, request: Any) -> aiohttp.web.StreamResponse:
        """Exec over a websocket (v5/v4 channel protocol). Only `tar xmf - -C DIR` is understood: the archive
        from stdin is unpacked into this pod's directory under `self.files`, where tests read it back."""
        raw = request._raw_request
        commands = raw.query.getall("command", [])
        ws = aiohttp.web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        await ws.prepare(raw)
        stdin = bytearray()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY and msg.data:
                if msg.data[0] == 0:
                    stdin += msg.data[1:]
                elif msg.data[0] == 255 and msg.data[1:2] == b"\x00":       # v5: stdin closed
                    break
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR):
                break
        status = {"metadata": {}, "status": "Success"}
        if commands[:3] == ["tar", "xmf", "-"] and "-C" in commands:
            import io
            import tarfile
            target = self.files / request.name / commands[commands.index("-C") + 1].lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=io.BytesIO(bytes(stdin))) as tar:
                tar.extractall(target, filter="data")
        else:
            status = {"metadata": {}, "status": "Failure", "message": f"unsupported command {commands}"}
        if not ws.closed:
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
        return ws

    def _stamp(self, obj: dict, namespace: str | None) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        self.version += 1
        meta.setdefault("namespace", namespace)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["generation"] = 1

    async def _spawn_pod(self, job: dict) -> None:
        name = job["metadata"]["name"]
        ns = job["metadata"].get("namespace")
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{name}-{uuid.uuid4().hex[:5]}", "namespace": ns,
                            "labels": {**job["spec"]["template"]["metadata"].get("labels", {}), "job-name": name,
                                       "batch.kubernetes.io/job-name": name},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                                 "uid": job["metadata"]["uid"], "controller": True}]},
               "spec": job["spec"]["template"]["spec"], "status": {"phase": "Pending"}}
        self.seed(pod)

    def seed(self, obj: dict) -> None:
        group, _, version = obj["apiVersion"].rpartition("/")
        plural = {"Job": "jobs", "Pod": "pods", "Secret": "secrets", "ConfigMap": "configmaps",
                  "Event": "events", "Node": "nodes"}[obj["kind"]]
        self._stamp(obj, obj["metadata"].get("namespace"))
        key = (references.resource(group, version, plural), obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if key in self._objects and not self._objects[key].deleted:
            self._objects[key].delete()
        if key in self._objects:
            self._objects[key].create(obj)
        else:
            self._objects[key] = obj

    async def _delete_pods_of(self, namespace: str, job: str) -> None:
        async with self._lock:
            for (res, ns, _name), obj in list(self._objects.items()):
                labels = (obj.get("metadata") or {}).get("labels") or {}
                if res.plural == "pods" and ns == namespace and not obj.deleted and job in (
                        labels.get("job-name"), labels.get("batch.kubernetes.io/job-name")):
                    obj.delete()

    def _select(self, plural: str, namespace: str | None, params: dict) -> list:
        out = []
        for (res, ns, name), obj in list(self._objects.items()):
            if res.plural != plural or obj.deleted or (namespace is not None and ns != namespace):
                continue
            raw = obj.raw
            if matches_labels((raw.get("metadata") or {}).get("labels") or {}, params.get("labelSelector")) and \
                    matches_fields(raw, params.get("fieldSelector")):
                out.append((res, ns, name, obj))
        return out

    async def _serve_list(self, request: Any) -> Any:
        items = [o.raw for *_, o in self._select(request.resource.plural, request.namespace, dict(request.params))]
        return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": str(self.version)}, "items": items}

    async def _delete_collection(self, request: Any) -> aiohttp.web.StreamResponse:
        doomed = self._select(request.resource.plural, request.namespace, dict(request.params))
        for _res, ns, name, obj in doomed:
            obj.delete()
            if request.resource.plural == "jobs":
                await self._delete_pods_of(ns, name)
        return aiohttp.web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Success"})

    async def _control(self, action: str, request: Any) -> aiohttp.web.StreamResponse:
        data = request.data if isinstance(request.data, dict) else {}
        if action == "reset":
            for key in list(self._objects):
                del self._objects[key]
            self.log.clear()
            self._requests.clear()              # kmock keeps every request: drop them between tests
            self.faults.clear()
            self.pod_logs.clear()
            self.controller = False
        elif action == "seed":
            self.seed(data)
        elif action == "fault":
            self.faults.append({"method": data["method"].upper(), "path": data["path"], "status": data["status"],
                                "times": data.get("times", 1), "headers": data.get("headers") or {},
                                "body": data.get("body") or {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                             "code": data["status"], "message": "injected fault"}})
        elif action == "log":
            self.pod_logs[(data["namespace"], data["pod"])] = data["text"]
        elif action == "pod-file":
            path = self.files / data["pod"] / data["path"].lstrip("/")
            return aiohttp.web.json_response({"text": path.read_text() if path.is_file() else None})
        elif action == "controller":
            self.controller = bool(data.get("on"))
        elif action == "requests":
            return aiohttp.web.json_response(self.log)
        elif action == "clear-requests":
            self.log.clear()
        elif action == "objects":
            plural, ns = data["plural"], data.get("namespace")
            return aiohttp.web.json_response([o.raw for *_, o in self._select(plural, ns, {})])
        else:
            return aiohttp.web.json_response({"error": f"unknown control {action}"}, status=404)
        return aiohttp.web.json_response({"ok": True})


async def serve(port: int, latency_ms: float = 0.0) -> None:
    emulator = Emulator()
    emulator.latency = latency_ms / 1000
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port):
        print(f"listening on 127.0.0.1:{port}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every API response (benchmarks)")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.latency_ms))


if __name__ == "__main__":
    main()
