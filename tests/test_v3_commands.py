"""v2 commands to v3 shell commands and back (protocol/ovms_v3/commands.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.messages import CommandResponse
from protocol.ovms_v3 import commands
from protocol.ovms_v3.commands import answer, refusal, shell_command


@pytest.mark.parametrize(("number", "params", "shell"), [
    (11, [], "charge start"),
    (12, [], "charge stop"),
    (10, ["0"], "charge mode standard"),
    (10, ["1"], "charge mode storage"),
    (10, ["3"], "charge mode range"),
    (10, ["4"], "charge mode performance"),
    (15, ["16"], "charge current 16"),
    (18, [], "wakeup"),
    (19, [], "wakeup"),
    (20, ["1234"], "lock 1234"),
    (21, ["1234"], "valet 1234"),
    (22, [" 1234 "], "unlock 1234"),
    (23, ["1234"], "unvalet 1234"),
    (24, ["0"], "homelink 1"),
    (24, ["2"], "homelink 3"),
    (25, [], "charge cooldown"),
    (26, ["1"], "climatecontrol on"),
    (26, ["0"], "climatecontrol off"),
    (6, [], "stat"),
    (5, [], "module reset"),
    (7, ["metrics list v.b.soc"], "metrics list v.b.soc"),
    (7, ["config set a b", "c"], "config set a b,c"),  # commas belong to the line
])
def test_shell_commands(number: int, params: list[str], shell: str) -> None:
    assert shell_command(number, params) == shell


@pytest.mark.parametrize(("number", "params"), [
    (20, []), (20, ["12 34"]), (20, ["1234\nmodule reset"]), (20, ["1234;x"]),
    (10, ["2"]), (10, ["standard"]), (15, ["0"]), (15, ["1000"]), (15, ["16A"]),
    (24, ["3"]), (24, []), (26, ["2"]), (7, [""]), (7, ["lock 1\nmodule reset"]),
    (7, ["x" * 201]), (7, ["metrics list \u00e9"]), (7, ["a\x1bb"]),
])
def test_bad_parameters_give_none(number: int, params: list[str]) -> None:
    assert shell_command(number, params) is None
    msg = refusal(number, params)
    resp = CommandResponse.parse(msg.data)
    assert (resp.number, resp.result) == (number, commands.FAILED)


@pytest.mark.parametrize("number", [1, 2, 3, 4, 16, 17, 40, 41, 49, 99, 30])
def test_unsupported(number: int) -> None:
    assert shell_command(number, ["1", "2"]) is None
    assert refusal(number, []).text() == f"c{number},2"
    assert commands.unsupported(number).text() == f"c{number},2"


def test_every_protocol_command_is_mapped_or_named_unsupported() -> None:
    """The numbers PROTOCOL.md lists for the cars (copied here: tests never read
    /work/shared)."""
    protocol_numbers = {1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 15, 16, 17, 18, 19, 20, 21,
                        22, 23, 24, 25, 26, 40, 41, 49}
    assert set(commands.BY_NUMBER) | set(commands.UNSUPPORTED_COMMANDS) == protocol_numbers
    assert not set(commands.BY_NUMBER) & set(commands.UNSUPPORTED_COMMANDS)


@pytest.mark.parametrize(("number", "output", "text"), [
    (20, "Vehicle locked\n", "c20,0"),
    (20, "Error: vehicle could not be locked\n", "c20,1,Error: vehicle could not be locked"),
    (20, "Error: Vehicle lock functionality not available\n",
     "c20,2,Error: Vehicle lock functionality not available"),
    (15, "Error: Could not set charge current limit to 16A\n",
     "c15,1,Error: Could not set charge current limit to 16A"),
    (26, "Climate Control \non\n", "c26,0"),
    (26, "Unrecognised command\n", "c26,2,Unrecognised command"),
    (7, "Error: bad, very\n", "c7,0,Error: bad; very"),
    (6, "Not charging\nSOC: 81.5%\n", "c6,0,Not charging | SOC: 81.5%"),
    (7, "", "c7,0"),
])
def test_answers(number: int, output: str, text: str) -> None:
    msg = answer(number, output)
    assert msg.text() == text
    assert CommandResponse.parse(msg.data).number == number


def test_long_output_is_cut() -> None:
    msg = answer(7, "line\n" * 5000)
    assert msg.problem() is None
    assert len(msg.data) <= commands.MAX_ANSWER + 10
    assert msg.data.endswith("...")


def test_command_table_checks_its_templates() -> None:
    with pytest.raises(ValueError):
        commands.Command(99, "x", "lock", (commands.Param.PIN,))
    with pytest.raises(ValueError):
        commands.Command(99, "x", "lock {0} {1}", (commands.Param.PIN,))


@given(st.integers(min_value=-5, max_value=60),
       st.lists(st.text(max_size=30), max_size=4), st.text(max_size=300))
def test_never_raises_and_never_two_lines(number: int, params: list[str], output: str) -> None:
    shell = shell_command(number, params)
    if shell is not None:
        assert "\n" not in shell and "\r" not in shell and shell.isprintable()
    else:
        assert refusal(number, params).problem() is None
    assert answer(number, output).problem() is None
