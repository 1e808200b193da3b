"""When two states of a run are the same for the rest of a page (scripts/equivalence.py): the rules the
new-terminal ability stops by, each shown to tell apart what it must and to let through only drawn values."""

from __future__ import annotations

from scripts import equivalence as eq
from scripts.sandbox import HOME

SECRET_A = "3q2+7wAbCdEfGhIjKlMnOpQrStUvWxYz0123456789Ab"  # base64 with digits and both cases: drawn
SECRET_B = "Zm9vYmFyQmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWpr"
SECRET_C = "9xYwVuTsRqPoNmLkJiHgFeDcBa876543210zyxwvutsr"
HEX_A, HEX_B = "a1b2c3d4e5f60718293a4b5c6d7e8f90", "0f9e8d7c6b5a49382716f5e4d3c2b1a0"


def state(
    files: dict[str, str] | None = None, *, variables: dict[str, str] | None = None, functions: dict[str, str] | None = None, cwd: str = HOME, pipefail: bool = False
) -> eq.State:
    """A state with these files under HOME (and HOME/reflector as a directory) and this shell."""
    nodes = {f"{HOME}/{path}": eq.Node("file", 0o600, text) for path, text in (files or {}).items()}
    nodes[HOME] = eq.Node("dir", 0o755)
    nodes[f"{HOME}/reflector"] = eq.Node("dir", 0o755)
    lines = {name: f'declare -- {name}="{value}"' for name, value in (variables or {}).items()}
    options = dict.fromkeys(eq.CARRIED_OPTIONS, False) | {"pipefail": pipefail}
    return eq.State(eq.Capture(nodes), eq.Shell(lines, functions or {}, frozenset(), options, "0022", cwd))


# ---------------------------------------------------------------------------------------------
# Drawn values may be renamed, one to one, unless the world held them at the break
# ---------------------------------------------------------------------------------------------


def test_worlds_that_differ_only_in_values_drawn_after_the_break_match() -> None:
    """Two runs each generated their own secret and used it in two places: the same world up to the renaming."""
    mine = state({"a/.env": f"S={SECRET_A}\n", "b/.env": f"COPY={SECRET_A}\n"})
    theirs = state({"a/.env": f"S={SECRET_B}\n", "b/.env": f"COPY={SECRET_B}\n"})
    assert eq.match(mine, theirs, ["true"], frozenset()) == {SECRET_A: SECRET_B}


def test_a_value_the_world_held_at_the_break_must_stay_the_same() -> None:
    """A secret in use at the break that one run replaced is not a drawn value to rename: the states differ."""
    mine = state({"a/.env": f"S={SECRET_C}\n"})
    theirs = state({"a/.env": f"S={SECRET_A}\n"})
    assert eq.match(mine, theirs, ["true"], frozenset({SECRET_A})) is None
    assert eq.match(mine, theirs, ["true"], frozenset()) == {SECRET_C: SECRET_A}


def test_a_renaming_must_be_one_to_one() -> None:
    """One run copied its secret where the other wrote a second one: no consistent renaming exists."""
    mine = state({"a/.env": f"S={SECRET_A}\n", "b/.env": f"COPY={SECRET_A}\n"})
    theirs = state({"a/.env": f"S={SECRET_B}\n", "b/.env": f"COPY={SECRET_C}\n"})
    assert eq.match(mine, theirs, ["true"], frozenset()) is None


def test_values_of_other_shapes_and_plain_settings_are_never_renamed() -> None:
    """A hex secret is not a base64 one, and a setting (none, jwt) is not a drawn value at all."""
    assert eq.match(state({"a/.env": f"S={HEX_A}\n"}), state({"a/.env": f"S={SECRET_A}\n"}), ["true"], frozenset()) is None
    assert eq.match(state({"a/.env": f"S={HEX_A}\n"}), state({"a/.env": f"S={HEX_B}\n"}), ["true"], frozenset()) == {HEX_A: HEX_B}
    assert eq.match(state({"a/.env": "AUTH_BACKEND=none\n"}), state({"a/.env": "AUTH_BACKEND=jwt\n"}), ["true"], frozenset()) is None
    assert eq.match(state({"a/.env": "NAME=authentik-server-1\n"}), state({"a/.env": "NAME=authentik-server-2\n"}), ["true"], frozenset()) is None


def test_drawn_values_are_the_kinds_a_world_makes() -> None:
    """Keys, times, UUIDs, epoch seconds, Docker short IDs and secrets are drawn; names and paths are not."""
    text = (
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----\n"
        "2026-11-30T22:56:15.084+00:00 3fe1d2e6-4ad1-4a16-b4a8-37da9b18e96b 1796082826.25 de35b59b7f94 "
        f"{SECRET_A}== authentik-server-1 /home/deployer/reflector/server/.env default-provider-authorization-implicit-consent"
    )
    found = [m.group(0) for m in eq.TOKEN.finditer(text)]
    assert found == [
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg\n-----END PUBLIC KEY-----",
        "2026-11-30T22:56:15.084+00:00",
        "3fe1d2e6-4ad1-4a16-b4a8-37da9b18e96b",
        "1796082826.25",
        "de35b59b7f94",
        f"{SECRET_A}==",
    ]


def test_rename_undoes_a_match() -> None:
    """The end a stopped run would have had: the later run's end with its drawn values swapped back."""
    mine = state({"a/.env": f"S={SECRET_A}\n"})
    theirs = state({"a/.env": f"S={SECRET_B}\n", "c/.env": f"NEW={SECRET_C}\n"})
    renaming = eq.match(mine, state({"a/.env": f"S={SECRET_B}\n"}), ["true"], frozenset())
    assert renaming == {SECRET_A: SECRET_B}
    back = eq.rename(theirs.world, {b: a for a, b in renaming.items()})
    assert (back.nodes[f"{HOME}/a/.env"].text, back.nodes[f"{HOME}/c/.env"].text) == (f"S={SECRET_A}\n", f"NEW={SECRET_C}\n")


# ---------------------------------------------------------------------------------------------
# Only the shell state the remaining steps can read
# ---------------------------------------------------------------------------------------------


def test_a_variable_the_remaining_steps_name_must_be_equal() -> None:
    """MODE is used later: a new terminal that loaded another mode is another state; a variable nobody names is not."""
    rest = ['echo "MODE=$MODE" > ~/record/.env']
    assert eq.match(state(variables={"MODE": "maintenance"}), state(variables={"MODE": "stable"}), rest, frozenset()) is None
    assert eq.match(state(variables={"MODE": "stable", "LEFTOVER": "x"}), state(variables={"MODE": "stable"}), rest, frozenset()) == {}


def test_names_reach_through_function_bodies_variable_values_and_sourced_files() -> None:
    """helper reads URL, and the sourced file reads CLIENT: both matter though the steps spell neither."""
    helper = {"helper": 'helper () \n{ \n    curl "$URL"\n}'}
    rest = ["helper", ". ~/values.sh"]
    files = {"values.sh": 'echo "$CLIENT"\n'}
    rel = eq.relevance(rest, [state(files, functions=helper)])
    assert {"helper", "URL", "CLIENT"} <= rel.names
    assert "LEFTOVER" not in rel.names


def test_a_step_that_reads_names_it_does_not_spell_makes_every_variable_matter() -> None:
    """eval, ${!…} and a bare `set` can read any variable: then nothing may differ."""
    for rest in (['eval "echo $X"'], ["echo ${!PRE*}"], ["set"], [". $FILE"]):
        assert "LEFTOVER" in eq.relevance(rest, [state(variables={"LEFTOVER": "x"})]).names, rest


def test_exported_variables_always_matter_oldpwd_only_when_read() -> None:
    """A child process sees every exported variable; OLDPWD is bash's own, read by `cd -` or `~-`."""
    s = state()
    s = eq.State(s.world, eq.Shell({"TOKEN_FILE": 'declare -x TOKEN_FILE="a"', "OLDPWD": 'declare -x OLDPWD="/x"'}, {}, frozenset(), s.shell.options, "0022", HOME))
    assert ("TOKEN_FILE" in eq.relevance(["true"], [s]).names, "OLDPWD" in eq.relevance(["true"], [s]).names) == (True, False)
    assert "OLDPWD" in eq.relevance(["cd - > /dev/null"], [s]).names


def test_the_cwd_and_options_matter_unless_the_next_step_sets_them_first() -> None:
    """`cd ~/reflector` and `set -o pipefail` at the top of the next step make the old values unreadable; anything else keeps them."""
    here, there = state(cwd=f"{HOME}/reflector", pipefail=True), state()
    assert eq.match(here, there, ["set -o pipefail\ncd ~/reflector\nls"], frozenset()) == {}
    assert eq.match(here, there, ["cd ~/reflector\nls"], frozenset()) is None  # pipefail still differs
    assert eq.match(here, there, ["set -o pipefail\nls\ncd ~/reflector"], frozenset()) is None  # ls runs in the old cwd
    assert eq.match(here, there, ["set -o pipefail\ncd ~/missing\nls"], frozenset()) is None  # the cd fails: ls runs in the old cwd
