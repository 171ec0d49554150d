"""Where the API server is and how to authenticate, read without importing the Kubernetes client.

Kubeconfig files (every file of KUBECONFIG, merged the way kubectl merges them: the first file to define a
name or the current context wins) and the in-cluster service account give a `Credentials`: server, TLS
material and an Authorization header. Static credentials (a token or token file, a client certificate, basic
auth) are read here, in a few milliseconds; anything that needs a program or a refresh (`exec:` plugins such as
kubelogin, `auth-provider:`) goes through the official loader of the `kubernetes` package, which runs them.
"""
from __future__ import annotations

import atexit
import base64
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import ClusterError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class Credentials:
    server: str                              # https://host:port, no trailing slash
    ca_file: str | None = None               # None: the system's trust store
    verify: bool = True
    cert_file: str | None = None             # a client certificate and its key, as files
    key_file: str | None = None
    authorization: str | None = None         # the Authorization header's value
    tls_server_name: str | None = None
    proxy: str | None = None
    source: str = ""                         # the file (or "in-cluster") it came from, for error messages


def paths() -> list[Path]:
    """The kubeconfig files in effect: KUBECONFIG's entries, else ~/.kube/config when it exists."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    default = Path.home() / ".kube" / "config"
    return [default] if default.is_file() else []


def _read(path: Path) -> dict:
    import yaml
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ClusterError(f"kubeconfig {path}: cannot read it ({err.strerror})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ClusterError(f"kubeconfig {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ClusterError(f"kubeconfig {path}: expected a mapping at the top level")
    return data


def _merged(files: list[Path]) -> tuple[dict, dict[str, Path]]:
    """One config from several files; also which file defined each cluster/user (relative paths resolve there)."""
    out: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": None}
    origin: dict[str, Path] = {}
    for path in files:
        if not path.is_file():
            continue
        data = _read(path)
        if out["current-context"] is None and data.get("current-context"):
            out["current-context"] = data["current-context"]
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in data.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in out[section]:
                    out[section][entry.get("name")] = entry.get(inner) or {}
                    origin[f"{section}/{entry.get('name')}"] = path
    return out, origin


_TEMP: list[str] = []


def _data_file(data: str, what: str) -> str:
    """Base64 `*-data` written to a private temporary file (TLS libraries take files), removed at exit."""
    if not _TEMP:
        _TEMP.append(tempfile.mkdtemp(prefix="kube-toolbox-tls-"))
        atexit.register(shutil.rmtree, _TEMP[0], True)
    try:
        raw = base64.b64decode(data, validate=False)
    except ValueError:
        raise ClusterError(f"kubeconfig: {what} is not valid base64") from None
    fd, name = tempfile.mkstemp(dir=_TEMP[0])
    with os.fdopen(fd, "wb") as handle:
        handle.write(raw)
    return name


def _file(entry: Mapping[str, Any], key: str, base: Path) -> str | None:
    """`key-data` (inline) or `key` (a path, relative to the kubeconfig file that defined it)."""
    if entry.get(f"{key}-data"):
        return _data_file(str(entry[f"{key}-data"]), f"{key}-data")
    if entry.get(key):
        return str((base.parent / os.path.expanduser(str(entry[key]))).resolve())
    return None


def _official(context: str | None) -> Credentials:
    """The official loader, for credentials that need a program or a refresh (exec plugins, auth providers)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=os.pathsep.join(map(str, paths())), context=context,
                                client_configuration=configuration)
    except (ConfigException, OSError, ValueError) as err:
        raise ClusterError(f"kubeconfig: {str(err).splitlines()[0]}") from err
    authorization = None
    settings: Mapping[str, Any] = dict(configuration.auth_settings())
    for setting in settings.values():                    # "authorization" (29.x) or "BearerToken" (37.x)
        header = setting.get("in") == "header" and str(setting.get("key")).lower() == "authorization"
        if header and setting.get("value"):
            authorization = str(setting["value"])
    if not authorization and configuration.username:
        authorization = "Basic " + base64.b64encode(
            f"{configuration.username}:{configuration.password}".encode()).decode()
    return Credentials(configuration.host.rstrip("/"), configuration.ssl_ca_cert, bool(configuration.verify_ssl),
                       configuration.cert_file, configuration.key_file, authorization,
                       getattr(configuration, "tls_server_name", None), configuration.proxy, "kubeconfig")


def in_cluster() -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ClusterError("no kubeconfig: set KUBECONFIG or create ~/.kube/config (or run inside a cluster)")
    token_file = SERVICE_ACCOUNT / "token"
    try:
        token = token_file.read_text().strip()
    except OSError as err:
        raise ClusterError(f"in-cluster: cannot read the service account token {token_file} "
                           f"({err.strerror})") from None
    host = f"[{host}]" if ":" in host else host
    ca = SERVICE_ACCOUNT / "ca.crt"
    return Credentials(f"https://{host}:{port}", str(ca) if ca.is_file() else None, True,
                       authorization=f"Bearer {token}", source="in-cluster")


def load(context: str | None = None) -> Credentials:
    """The credentials of the current (or the named) context."""
    files = paths()
    if not files:
        return in_cluster()
    where = files[0] if len(files) == 1 else os.pathsep.join(map(str, files))
    if not any(path.is_file() for path in files):
        raise ClusterError(f"kubeconfig {where}: no such file (set KUBECONFIG or create ~/.kube/config)")
    config, origin = _merged(files)
    name = context or config["current-context"]
    if not name:
        raise ClusterError(f"kubeconfig {where}: no current-context (set one with `kubectl config use-context`)")
    ctx = config["contexts"].get(name)
    if ctx is None:
        raise ClusterError(f"kubeconfig {where}: context '{name}' is not defined")
    cluster = config["clusters"].get(ctx.get("cluster"))
    if not cluster or not cluster.get("server"):
        raise ClusterError(f"kubeconfig {where}: context '{name}' names cluster '{ctx.get('cluster')}', "
                           f"which is not defined or has no server")
    user = config["users"].get(ctx.get("user")) or {}
    if user.get("exec") or user.get("auth-provider") or cluster.get("proxy-url"):
        return _official(context)
    cluster_file = origin.get(f"clusters/{ctx.get('cluster')}", files[0])
    user_file = origin.get(f"users/{ctx.get('user')}", files[0])
    authorization = None
    if user.get("token"):
        authorization = f"Bearer {user['token']}"
    elif user.get("tokenFile"):
        try:
            authorization = f"Bearer {Path(_file(user, 'tokenFile', user_file) or '').read_text().strip()}"
        except OSError as err:
            raise ClusterError(f"kubeconfig {user_file}: cannot read tokenFile ({err.strerror})") from None
    elif user.get("username"):
        authorization = "Basic " + base64.b64encode(
            f"{user['username']}:{user.get('password') or ''}".encode()).decode()
    return Credentials(
        server=str(cluster["server"]).rstrip("/"), ca_file=_file(cluster, "certificate-authority", cluster_file),
        verify=not cluster.get("insecure-skip-tls-verify"),
        cert_file=_file(user, "client-certificate", user_file), key_file=_file(user, "client-key", user_file),
        authorization=authorization, tls_server_name=cluster.get("tls-server-name"), source=str(where))
