"""The built wheel carries the migrations: install it into a fresh virtualenv and
run ``planctl db-upgrade`` from a directory that has nothing to do with the repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_install_runs_migrations_from_anywhere(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheels = list(dist.glob("planctl-*.whl"))
    assert len(wheels) == 1

    import zipfile

    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "planctl/migrations/env.py" in names
    assert any(n.startswith("planctl/migrations/versions/") and n.endswith(".py") for n in names)

    env_dir = tmp_path / "venv"
    # No pip of its own (ensurepip costs seconds): this pip installs into it (--python).
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheels[0]),
        ],
        check=True,
        capture_output=True,
        text=True,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    clean_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV") and not k.startswith("PLANCTL_")
    }
    planctl = str(env_dir / "bin" / "planctl")
    done = subprocess.run(
        [planctl, "db-upgrade"], cwd=elsewhere, env=clean_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "planificador.db").exists()

    done = subprocess.run(
        [planctl, "db-info", "--json"],
        cwd=elsewhere,
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(done.stdout)
    assert info["at_head"] is True
    assert info["tables"]["sesiones"] == 0

    where = subprocess.run(
        [str(python), "-c", "import planctl; print(planctl.__file__)"],
        cwd=elsewhere,
        env=clean_env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout  # the installed copy, not the checkout

    # An installed planctl never writes a migration into its own site-packages.
    versions = sorted((env_dir / "lib").glob("python*/site-packages/planctl/migrations/versions"))
    before = sorted(p.name for p in versions[0].iterdir())
    done = subprocess.run(
        [planctl, "db-revision", "-m", "oops"],
        cwd=elsewhere,
        env=clean_env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "source checkout" in done.stderr
    assert sorted(p.name for p in versions[0].iterdir()) == before
