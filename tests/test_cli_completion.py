"""Shell completion, as a shell runs it: the installed ``planctl`` script as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLANCTL = Path(sys.executable).with_name("planctl")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert PLANCTL.exists(), "pip install -e . installs the planctl script next to python"
    return subprocess.run(
        [str(PLANCTL), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("planctl bac", ["backup"]),
        ("planctl backup l", ["list"]),
        ("planctl sync remote ", ["list", "edit", "delete", "add"]),
        ("planctl export ", ["csv", "ical", "pdf"]),
    ],
)
def test_completion_candidates(words: str, expected: list[str]) -> None:
    # What the script from --show-completion bash runs on every <TAB>.
    cword = str(len(words.split(" ")) - 1)
    done = _run(_PLANCTL_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=cword)
    assert done.returncode == 0, done.stderr
    candidates = done.stdout.split()
    assert all(name in candidates for name in expected), candidates
    assert "db-upgrade" not in candidates


def test_completion_of_options() -> None:
    done = _run(
        _PLANCTL_COMPLETE="complete_bash", COMP_WORDS="planctl backup list --", COMP_CWORD="3"
    )
    assert {"--dir", "--json", "--remote"} <= set(done.stdout.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_completion_script_completes_in_bash(tmp_path: Path) -> None:
    # From a bash prompt: the shell is detected from the parent process (`; true` keeps bash
    # from exec-ing planctl in its place).
    shown = subprocess.run(
        ["bash", "-c", f'"{PLANCTL}" --show-completion; true'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.stdout.startswith("_planctl_completion()"), shown.stderr
    assert "complete -o default -F _planctl_completion planctl" in shown.stdout
    script = tmp_path / "planctl.bash"
    script.write_text(shown.stdout)
    # Source the script, press <TAB> after "planctl backup l" and read what bash offers.
    done = subprocess.run(
        [
            "bash",
            "-c",
            f'source "{script}"; COMP_WORDS=(planctl backup l); COMP_CWORD=2;'
            ' _planctl_completion planctl; printf "%s\\n" "${COMPREPLY[@]}"',
        ],
        env={**os.environ, "PATH": f"{PLANCTL.parent}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.split() == ["list"], done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_completion_writes_the_script_and_sources_it(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", "-c", f'"{PLANCTL}" --install-completion; true'],
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    script = tmp_path / ".bash_completions" / "planctl.sh"
    assert f"bash completion installed in {script}" in done.stdout, done.stderr
    assert "_planctl_completion" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


def test_zsh_completion_candidates() -> None:
    done = _run(_PLANCTL_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS="planctl backup l")
    assert '"list":"List the backups, newest first."' in done.stdout, done.stderr


@pytest.mark.parametrize(("shell", "marker"), [("zsh", "#compdef planctl"), ("fish", "complete")])
def test_completion_script_for_another_shell(shell: str, marker: str) -> None:
    done = _run(_PLANCTL_COMPLETE=f"source_{shell}")
    assert done.returncode == 0 and marker in done.stdout


def test_help_lists_the_completion_options() -> None:
    done = _run("--help")
    assert "--install-completion" in done.stdout and "--show-completion" in done.stdout
