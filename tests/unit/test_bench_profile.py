"""The profile summary of `python -m bench --profile ROLE` (bench/profile.py)."""

from __future__ import annotations

from bench.profile import _role_of, summarize


def test_the_role_is_read_from_the_devstack_command_line() -> None:
    assert _role_of(["/venv/bin/python", "-m", "worker.entrypoints.cli", "intake"]) == "intake"
    assert _role_of(["/venv/bin/python", "-m", "bench", "--only", "intake"]) is None
    assert _role_of(["python", "-m", "worker.entrypoints.cli"]) is None


def test_shares_are_inclusive_once_per_stack_and_self_for_the_leaf() -> None:
    raw = [
        "main (cli.py:10);run (intake.py:5);parse (requested.py:3) 30",
        "main (cli.py:10);run (intake.py:5);store (intake.py:9);run (intake.py:5) 10",
        "main (cli.py:10);wait (connection.py:7) 60",
        "not a sample line",
    ]
    text = summarize(raw)
    assert text.startswith("100 samples")
    inclusive, own = text.split("self:")
    assert "100.0%  main (cli.py)" in inclusive
    assert " 40.0%  run (intake.py)" in inclusive  # counted once in the recursive stack
    assert " 60.0%  wait (connection.py)" in own
    assert " 30.0%  parse (requested.py)" in own
    assert " 10.0%  run (intake.py)" in own


def test_no_samples_says_so() -> None:
    assert summarize([]) == "no samples\n"
