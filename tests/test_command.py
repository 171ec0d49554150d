"""Command processing: comments, the [local](remote) sugar, placeholders, and injection-proof quoting."""
from __future__ import annotations

import random
import subprocess
import sys

import pytest

from kube.command import join_lines, placeholders, process, split_sugar, strip_comments, substitute


@pytest.mark.parametrize("text, local, remote", [
    pytest.param("[](make download file=data/;) python a.py", " python a.py",
                 "make download file=data/; python a.py", id="reference"),
    pytest.param("[a](b) x [c](d)", "a x c", "b x d", id="several"),
    pytest.param("[echo [x]](f (y))", "echo [x]", "f (y)", id="nested"),
    pytest.param("echo ${a[0]} [1]", "echo ${a[0]} [1]", "echo ${a[0]} [1]", id="index-left-alone"),
    pytest.param("a[0] (x)", "a[0] (x)", "a[0] (x)", id="space-is-not-sugar"),
    pytest.param(r"echo \[x](y)", "echo [x](y)", "echo [x](y)", id="escaped"),
    pytest.param("[]()", "", "", id="empty-sides"),
    pytest.param("[[ -f x ]] && echo y", "[[ -f x ]] && echo y", "[[ -f x ]] && echo y", id="bash-test"),
])
def test_split_sugar(text, local, remote):
    assert split_sugar(text) == (local, remote)


def test_unclosed_sugar_is_an_error():
    with pytest.raises(ValueError, match="never closed"):
        split_sugar("[a](b")


def test_comments_are_removed_even_across_lines():
    assert strip_comments("a ##x## b ##multi\nline## c") == "a  b  c"


def test_placeholders_found_and_shell_syntax_ignored():
    assert placeholders("cmd <a> <b_1> <a> 2>&1 < in.txt <<EOF a<b \\<lit>") == ["a", "b_1"]


@pytest.mark.parametrize("text, value, expected", [
    pytest.param("x <v>", "data/1.txt", "x data/1.txt", id="safe-bare"),
    pytest.param("x <v>", "1e-5", "x 1e-5", id="number-bare"),
    pytest.param("x <v>", "a b", "x 'a b'", id="space-quoted"),
    pytest.param("x '<v>'", "it's", "x 'it'\\''s'", id="single-context"),
    pytest.param('x "<v>"', 'a"$b', 'x "a\\"\\$b"', id="double-context"),
    pytest.param("x <v>", "", "x ''", id="empty"),
    pytest.param("x <v>", True, "x true", id="bool-yaml-spelling"),
    pytest.param("x \\<v>", "ignored", "x <v>", id="escaped-literal"),
])
def test_substitute_quotes_for_context(text, value, expected):
    assert substitute(text, {"v": value}, quote=True) == expected


def test_substitute_without_shell_inserts_raw():
    assert substitute("img:<tag>", {"tag": "a b"}, quote=False) == "img:a b"


def test_unknown_placeholder_raises_keyerror_with_its_name():
    with pytest.raises(KeyError) as err:
        substitute("python a.py <fn>", {}, quote=True)
    assert err.value.args[0] == "fn"


def test_multiline_commands_keep_lines():
    text = "cd src\n\n  # a comment\npython train.py \\\n  --lr 1   \n"
    assert join_lines(text) == "cd src\npython train.py \\\n  --lr 1"


def test_process_reference_example():
    assert process("[](make download file=data/;) python src/avg.py <fn>", {"fn": "data/1.txt"}) == (
        "python src/avg.py data/1.txt", "make download file=data/; python src/avg.py data/1.txt")


ARGV = [sys.executable, "-c", "import sys; print(repr(sys.argv[1:]))"]
SHOW = " ".join(f"'{a}'" for a in ARGV)


def run_bash(command: str, cwd) -> str:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=30).stdout


@pytest.mark.parametrize("template", [f"{SHOW} <v>", f"{SHOW} '<v>'", f'{SHOW} "<v>"', f"{SHOW} pre<v>post"])
@pytest.mark.parametrize("value", ["x; touch pwned", "$(touch pwned)", "`touch pwned`", "' ; touch pwned; '",
                                   '" ; touch pwned; "', "a\ntouch pwned", "x && touch pwned", "\\'; touch pwned #"])
def test_injection_through_a_value_never_runs(tmp_path, template, value):
    local, _ = process(template, {"v": value})
    out = run_bash(local, tmp_path)
    assert not (tmp_path / "pwned").exists(), local
    prefix, suffix = ("pre", "post") if "pre<v>" in template else ("", "")
    assert out.strip() == repr([prefix + value + suffix])


def test_random_values_round_trip_as_one_argument(tmp_path):
    rng = random.Random(1234)
    alphabet = "abc XYZ019'\"$`\\;&|()<>*?!#~{}[]\n\t%"
    templates = [f"{SHOW} <v>", f"{SHOW} '<v>'", f'{SHOW} "<v>"']
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(40)]
    script = "\n".join(process(t, {"v": v})[0] for v in values for t in templates)
    out = run_bash(script, tmp_path).splitlines()
    assert out == [repr([v]) for v in values for _ in templates]
