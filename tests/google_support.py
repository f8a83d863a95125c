"""What the Google tests share: the emulator as a real process, the OAuth flow, and an
independent client (google-api-python-client) pointed at the emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import planctl_env


@dataclass
class EmulatorProcess:
    root: str  # http://127.0.0.1:<port>
    client_secrets: Path
    process: subprocess.Popen[str]

    def admin(self, path: str, body: Any = None, method: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"{}")

    def fault(self, **fault: Any) -> None:
        self.admin("/emulator/faults", fault)

    def clear_faults(self) -> None:
        self.admin("/emulator/faults", method="DELETE")

    def requests(self) -> int:
        return int(self.admin("/emulator/stats")["requests"])


def start_emulator(base: Path, env: dict[str, str]) -> Iterator[EmulatorProcess]:
    secrets = base / "client.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "planctl",
            "sync",
            "emulator",
            "--port",
            "0",
            "--store",
            str(base / "emulator.sqlite"),
            "--client-secrets",
            str(secrets),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=base,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "PLANCTL_GOOGLE_API_URL=" in line, process.stderr.read() if process.stderr else line
        yield EmulatorProcess(line.strip().rsplit("=", 1)[1], secrets, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def authorise(emulator: EmulatorProcess, token: Path, env: dict[str, str]) -> str:
    """``planctl sync auth --no-browser`` with the printed URL opened by an HTTP client; stdout."""
    env = {
        **env,
        "PLANCTL_GOOGLE_CLIENT_SECRETS": str(emulator.client_secrets),
        "PLANCTL_GOOGLE_TOKEN": str(token),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "planctl", "sync", "auth", "--no-browser"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("http"):
            with urllib.request.urlopen(line.strip(), timeout=10) as browser:
                assert browser.status == 200 and b"authorised" in browser.read()
            break
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return "".join(printed) + out + err


def google_env(
    url: str, tmp: Path, emulator: EmulatorProcess, token: Path, calendar: str
) -> dict[str, str]:
    return planctl_env(
        url,
        tmp / "backups",
        tmp / "logs",
        PLANCTL_SYNC_BACKEND="google",
        PLANCTL_GOOGLE_API_URL=emulator.root,
        PLANCTL_GOOGLE_TOKEN=str(token),
        PLANCTL_GOOGLE_CALENDAR=calendar,
        PLANCTL_TIMEZONE="Europe/Madrid",
    )


def copy_token(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    os.chmod(target, 0o600)
    return target


def phone_service(emulator: EmulatorProcess, token: Path) -> Any:
    """google-api-python-client's Calendar v3 service on the emulator (static discovery)."""
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    credentials = Credentials.from_authorized_user_file(str(token))
    credentials = credentials.with_token_uri(emulator.root + "/token")
    return build(
        "calendar",
        "v3",
        credentials=credentials,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": emulator.root + "/calendar/v3/"},
    )


def discovery() -> dict[str, Any]:
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache/documents/calendar.v3.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
    "number": (int, float),
}


def validate(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> None:
    """*value* against a discovery schema: known properties only, each of its type."""
    if "$ref" in schema:
        schema = doc["schemas"][schema["$ref"]]
    kind = schema.get("type", "any")
    if kind != "any":
        assert isinstance(value, JSON_TYPES[kind]), f"{where}: {value!r} is not {kind}"
        assert not (kind == "integer" and isinstance(value, bool)), where
    if kind == "object":
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                validate(item, properties[key], doc, f"{where}.{key}")
            else:
                assert extra is not None, f"{where}.{key}: not in the discovery document"
                validate(item, extra, doc, f"{where}.{key}")
    if kind == "array":
        for number, item in enumerate(value):
            validate(item, schema["items"], doc, f"{where}[{number}]")


def wait_for(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
