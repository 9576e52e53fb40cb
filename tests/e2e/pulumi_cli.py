"""The real Pulumi CLI on the project: a scratch project folder, a file backend, a passphrase provider."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STACK = "dc1"
PASSPHRASE = "resource-pool-e2e"


@dataclass
class PulumiProject:
    dir: Path
    env: dict[str, str]
    catalog: Path

    @classmethod
    def create(cls, root: Path, repo: Path, tools: dict[str, str], kubeconfig: Path, catalog: Path) -> PulumiProject:
        """Lay out the project (Pulumi.yaml copied, the packages and .venv linked) and log in to a file backend."""
        project = root / "project"
        project.mkdir()
        shutil.copy(repo / "Pulumi.yaml", project / "Pulumi.yaml")
        for name in ("pool_catalog", "infra", "policies", ".venv"):
            (project / name).symlink_to(repo / name)
        home = root / "pulumi-home"
        home.mkdir()
        state = root / "state"
        state.mkdir()
        env = {
            **os.environ,
            "PATH": f"{tools['PULUMI_BIN_DIR']}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(home),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "KUBECONFIG": str(kubeconfig),
            "NO_COLOR": "1",
        }
        env.pop("PULUMI_ACCESS_TOKEN", None)
        env.pop("PULUMI_BACKEND_URL", None)
        result = cls(dir=project, env=env, catalog=catalog)
        result.run("login", f"file://{state}")
        result.run("stack", "init", STACK, "--secrets-provider", "passphrase")
        result.run("config", "set", "resource-pool:catalog", str(catalog))
        result.run("config", "set", "resource-pool:cluster", STACK)
        return result

    def use_plugins(self, plugins: Path) -> None:
        """Plugins registered by tools/e2e-tools.sh (the kubernetes provider), shared read-only."""
        link = Path(self.env["PULUMI_HOME"]) / "plugins"
        if not link.exists():
            link.symlink_to(plugins)

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS` in the project folder; with check, a failure raises with both output streams."""
        result = subprocess.run(
            ["pulumi", "--non-interactive", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"pulumi {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}\n"
                f"--- stderr\n{result.stderr}"
            )
        return result

    def policy_pack(self) -> str:
        return str(self.dir / "policies")

    def preview_steps(self, *extra: str) -> list[dict[str, Any]]:
        """The steps `pulumi preview --json` plans: one dict per resource with `op` and `urn`."""
        result = self.run("preview", "--json", *extra)
        return json.loads(result.stdout).get("steps", [])

    def stack_resources(self) -> list[dict[str, Any]]:
        exported = json.loads(self.run("stack", "export").stdout)
        return exported["deployment"].get("resources", [])
