"""A Kubernetes control plane on 127.0.0.1 for the e2e tier: etcd, kube-apiserver, kube-controller-manager.

No kubelet and no container runtime: pods are admitted (quota, limits, Pod Security, RBAC) and
stored but never run. The Node objects of the catalog's servers are created here, as each
server's kubelet would register itself. Identities come from a static token file: `admin`
(system:masters) for the fixture, Pulumi and the controller manager.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN_TOKEN = "e2e-admin-token"
SERVICE_RANGE = "10.96.0.0/16"
"""Addresses the API server would give Services; no traffic goes there (no kube-proxy runs)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(directory: Path) -> dict[str, Path]:
    """A self-signed CA, the API server's serving certificate for 127.0.0.1, and a service-account key pair."""
    d = directory
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=resource-pool-e2e-ca",
             "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))  # fmt: skip
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
             "-keyout", str(d / "apiserver.key"), "-out", str(d / "apiserver.csr"))  # fmt: skip
    _openssl("x509", "-req", "-in", str(d / "apiserver.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.cnf"),
             "-out", str(d / "apiserver.crt"))  # fmt: skip
    _openssl("genrsa", "-out", str(d / "sa.key"), "2048")
    _openssl("rsa", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))
    return {name: d / name for name in ("ca.crt", "apiserver.crt", "apiserver.key", "sa.key", "sa.pub")}


@dataclass
class LocalCluster:
    """A running control plane; `api` sends requests as the admin token unless told otherwise."""

    url: str
    ca: Path
    kubeconfig: Path
    workdir: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        impersonate: tuple[str, list[str]] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """One API request; returns (status, decoded JSON body). Never raises on an HTTP error status."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if impersonate:
            user, groups = impersonate
            request.add_header("Impersonate-User", user)
            for group in groups:
                request.add_header("Impersonate-Group", group)
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        status, body = self.api("GET", path)
        assert status == 200, (path, status, body)
        return body

    def exists(self, path: str) -> bool:
        status, _ = self.api("GET", path)
        return status == 200

    def can(self, user: str, groups: list[str], verb: str, resource: str, namespace: str = "", group: str = "") -> bool:
        """The API server's RBAC authorizer answers a SubjectAccessReview for this user and groups."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace, "group": group},
            },
        }
        status, body = self.api("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
        assert status == 201, body
        return bool(body["status"].get("allowed"))

    def wait_for(self, what: str, predicate: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def create_node(self, name: str, cpu: str, memory: str) -> None:
        """Register a Node as a kubelet would: name, hostname label, capacity."""
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
            "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": "110"}},
        }
        status, response = self.api("POST", "/api/v1/nodes", body)
        assert status in (201, 409), response

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(name: str, argv: list[str], workdir: Path) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it until it ends
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)


def _wait_healthy(url: str, ca: Path, process: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    context = ssl.create_default_context(cafile=str(ca)) if url.startswith("https") else None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; log {log}:\n{_tail(log)}")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        with contextlib.suppress(OSError), urllib.request.urlopen(request, context=context, timeout=5) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} not healthy after {timeout:.0f} s; log {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def local_cluster(tools: dict[str, str], workdir: Path) -> Iterator[LocalCluster]:
    """Start etcd, kube-apiserver and kube-controller-manager on free loopback ports; stop them after."""
    pki = make_pki(workdir)
    (workdir / "tokens.csv").write_text(f'{ADMIN_TOKEN},admin,admin-uid,"system:masters"\n')
    etcd_client, etcd_peer, api_port, kcm_port = free_port(), free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{api_port}"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": {"server": url, "certificate-authority": str(pki["ca.crt"])}}],
                "users": [{"name": "admin", "user": {"token": ADMIN_TOKEN}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                "current-context": "e2e",
            }
        )
    )
    cluster = LocalCluster(url=url, ca=pki["ca.crt"], kubeconfig=kubeconfig, workdir=workdir)
    try:
        etcd = _start(
            "etcd",
            [
                tools["ETCD"],
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",  # a throwaway store: durability costs seconds per test on a shared disk
            ],
            workdir,
        )
        cluster.processes.append(etcd)
        _wait_healthy(f"http://127.0.0.1:{etcd_client}/health", pki["ca.crt"], etcd, workdir / "etcd.log", 60)
        apiserver = _start(
            "kube-apiserver",
            [
                tools["KUBE_APISERVER"],
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki['apiserver.crt']}",
                f"--tls-private-key-file={pki['apiserver.key']}",
                f"--client-ca-file={pki['ca.crt']}",
                f"--token-auth-file={workdir / 'tokens.csv'}",
                "--anonymous-auth=false",
                "--authorization-mode=Node,RBAC",
                # As real clusters run (kubeadm sets it): privileged pods are then refused by Pod Security
                # admission per namespace, not by the API server for everyone.
                "--allow-privileged=true",
                f"--service-account-key-file={pki['sa.pub']}",
                f"--service-account-signing-key-file={pki['sa.key']}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                # The plugins the README asks a cluster to run for the pool's namespaces (PodSecurity is on
                # by default); the rest of the defaults stay.
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,"
                "PodNodeSelector,PodTolerationRestriction",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
            workdir,
        )
        cluster.processes.append(apiserver)
        _wait_healthy(f"{url}/readyz", pki["ca.crt"], apiserver, workdir / "kube-apiserver.log", 180)
        kcm = _start(
            "kube-controller-manager",
            [
                tools["KUBE_CONTROLLER_MANAGER"],
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                # Namespace deletion (finalisation), quota status, and the default ServiceAccount pods need.
                # clusterrole-aggregation fills the built-in admin/edit/view roles from their aggregated parts.
                "--controllers=namespace,resourcequota,serviceaccount,garbagecollector,clusterrole-aggregation",
                "--leader-elect=false",
                f"--root-ca-file={pki['ca.crt']}",
                f"--service-account-private-key-file={pki['sa.key']}",
                "--concurrent-namespace-syncs=2",
            ],
            workdir,
        )
        cluster.processes.append(kcm)
        yield cluster
    finally:
        cluster.stop()
