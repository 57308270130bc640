"""The autoscaler's log: plain text by default, one JSON object per line on request."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from autoscaler.__main__ import arguments
from autoscaler.telemetry import JsonFormatter


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("autoscaler")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_json_lines_carry_time_level_message_and_the_fields(json_log: io.StringIO) -> None:
    fields = {"model": "m", "namespace": "llm", "variant": "m-l40s", "from": 2, "to": 3, "reason": "saturating"}
    logging.getLogger("autoscaler").info("m in llm: m-l40s 2 -> 3 replicas (saturating)", extra=fields)
    logging.getLogger("autoscaler").warning("m in llm: holding replicas: a\nb", extra={"model": "m"})
    first, second = (json.loads(line) for line in json_log.getvalue().splitlines())
    assert first == {
        "time": first["time"],
        "level": "INFO",
        "message": "m in llm: m-l40s 2 -> 3 replicas (saturating)",
        **fields,
    }
    assert first["time"].endswith("+00:00")
    assert second == {
        "time": second["time"],
        "level": "WARNING",
        "message": "m in llm: holding replicas: a\nb",
        "model": "m",
    }


def test_a_traceback_stays_inside_its_line(json_log: io.StringIO) -> None:
    try:
        raise ValueError("a bug")
    except ValueError:
        logging.getLogger("autoscaler").exception("reconcile pass failed")
    (line,) = json_log.getvalue().splitlines()
    assert "ValueError: a bug" in json.loads(line)["traceback"]


def test_the_format_is_chosen_by_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert arguments([]).log_format == "text"
    assert arguments(["--log-format", "json"]).log_format == "json"
    monkeypatch.setenv("AUTOSCALER_LOG_FORMAT", "json")
    assert arguments([]).log_format == "json"
