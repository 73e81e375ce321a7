"""The one CLI tree (``lab/cli.py``): every command in ``--help``, ``--version``, help on every option, usage errors."""

from __future__ import annotations

import argparse
from importlib.metadata import version

import pytest

from lab import cli


def _parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
             ) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser argparse built, by its command path."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, (*path, name))
    return found


def test_every_declared_command_is_a_parser_and_vice_versa() -> None:
    declared = {path for path, _ in cli.walk(cli._tree())}
    built = {path for path, _ in _parsers(cli.build_parser())} - {()}
    assert declared == built
    expected = {("demo",), ("serve",), ("train",), ("evaluate",), ("evaluate", "physionet2012"),
                ("evaluate", "alert-burden"), ("evaluate", "alert-burden-physionet2012"), ("evaluate", "alert-day"),
                ("import", "physionet2012"), ("keys", "create"), ("keys", "list"), ("keys", "revoke"), ("replay",),
                ("simulate", "cohort"), ("simulate", "live"), ("simulate", "report")}
    assert expected <= declared


def test_help_lists_every_command_and_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for path, command in cli.walk(cli._tree()):
        assert f"wardtwin {' '.join(path)} " in text and command.help in text
    assert cli.main(["evaluate", "--help"]) == 0
    text = capsys.readouterr().out
    for name in ("physionet2012", "alert-burden", "alert-burden-physionet2012", "alert-day"):
        assert name in text


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"wardtwin {version('wardtwin')}"


def test_every_option_has_help_text() -> None:
    for path, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)


def test_every_command_that_runs_names_an_importable_typed_function() -> None:
    import importlib
    import inspect

    for path, command in cli.walk(cli._tree()):
        if command.run is None:
            assert command.commands, path  # a group: it needs a subcommand
            continue
        module, _, name = command.run.partition(":")
        function = getattr(importlib.import_module(module), name)
        parameters = inspect.signature(function).parameters
        expected = {o.name for o in command.options} | ({"command_line"} if command.with_command_line else set())
        assert set(parameters) == expected, path
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values()), path


@pytest.mark.parametrize("argv", [["bogus"], [], ["evaluate", "bogus"], ["keys"], ["replay", "--no-such-option"]])
def test_a_wrong_command_line_exits_2_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage: wardtwin" in capsys.readouterr().err


def test_a_check_refuses_a_combination_before_anything_runs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["keys", "create", "--role", "clinician", "--name", " ", "--data-dir", str(tmp_path)]) == 2
    assert "--name must be 1–64 characters" in capsys.readouterr().err
    assert not (tmp_path / "access.db").exists()
    assert cli.main(["train", "--patients", "2"]) == 2  # the shipped artifact needs set A
    assert "--physionet-records" in capsys.readouterr().err
    assert cli.main(["simulate", "live", "--beds", "2"]) == 2
    assert "at least one of --url" in capsys.readouterr().err


def test_options_reach_the_function_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake(**kwargs: object) -> int:
        seen.update(kwargs)
        return 0

    import lab.alert_burden

    monkeypatch.setattr(lab.alert_burden, "alert_burden_command", fake)
    assert cli.main(["evaluate", "alert-burden", "--seeds", "4,5", "--hours", "2"]) == 0
    assert seen["seeds"] == [4, 5] and seen["hours"] == 2.0 and seen["patients"] == 100
    assert seen["command_line"] == "wardtwin evaluate alert-burden --seeds 4,5 --hours 2"
