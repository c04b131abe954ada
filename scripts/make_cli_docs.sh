#!/usr/bin/env bash
# Regenerate docs/cli.md from the CLI's own help (tests/test_cli_docs.py checks it is current).
set -euo pipefail
cd "$(dirname "$0")/.."
"${PYTHON:-.venv/bin/python}" -m typer sarm2_gym.cli utils docs --name sarm2 --output docs/cli.md
