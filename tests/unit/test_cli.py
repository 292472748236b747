"""The console script: subcommands load lazily, and a missing optional package is explained."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from worker.entrypoints import cli


def test_every_command_names_an_importable_module() -> None:
    for name, (module, _help) in cli.COMMANDS.items():
        loaded = importlib.import_module(module)
        assert callable(loaded.add_arguments) and callable(loaded.run), name


@pytest.mark.parametrize(("command", "package"), [("sandbox", "sandbox"), ("demo", "devtools")])
def test_a_command_whose_package_is_not_installed_says_how_to_get_it(
    command: str, package: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.import_module

    def without_package(name: str, *args: Any) -> Any:
        if name.split(".")[0] == package:
            raise ModuleNotFoundError(f"No module named {package!r}", name=package)
        return real(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", without_package)
    assert cli.main([command, "--help"]) == 2
    err = capsys.readouterr().err
    assert f"refund-worker {command}: the {package!r} package is not installed here" in err
    assert "pip install ." in err


def test_a_missing_module_of_the_worker_itself_is_not_hidden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(name: str, *args: Any) -> Any:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(cli.importlib, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["status", "summary"])
