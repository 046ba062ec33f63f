"""Task runner: ``nox -s tests``, ``lint``, ``typecheck``, ``bench``, ``stress``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = False

PYTHON = ["3.11", "3.12", "3.13", "3.14"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (the README's test command runs this session)."""
    session.install("-e", ".[test]")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def tests_matrix(session: nox.Session) -> None:
    """Run the tests on every supported Python that is installed here."""
    session.install("-e", ".[test]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy, strict on the package."""
    session.install("-e", ".[test]", "mypy")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and rewrite benchmarks/RESULTS.md and the chart."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """The exact walk under heavy drift: 500 walks (not in the default suite), then the
    walk plan's property tests with twenty times as many cases."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks.stress_walk", *(session.posargs or ["--walks", "500"]))
    session.run("pytest", "-q", "tests/test_plan.py", env={"SPACETASKS_PLAN_SCALE": "20"})
