"""Command processing: comments, the [local](remote) sugar, placeholders, line joining, injection-proof quoting.

The quoting tests do not trust the quoting code: they run the produced command with `bash -c`, given as an
argument list, and check what the program received and that no marker file appeared.
"""
from __future__ import annotations

import random
import subprocess
import sys

import pytest

from kube.command import join_lines, placeholders, process, split_sugar, strip_comments, substitute

REF = "[](make download file=data/;) python src/avg.py <fn>"


# ---------------------------------------------------------------- ##comments##
@pytest.mark.parametrize("text, expected", [
    pytest.param("a ##x## b", "a  b", id="inline"),
    pytest.param("a ##x## b ##y## c", "a  b  c", id="several-non-greedy"),
    pytest.param("a ##multi\nline## c", "a  c", id="spans-lines"),
    pytest.param("a ## unclosed", "a ## unclosed", id="unclosed-kept"),
    pytest.param("echo '#' # shell comment", "echo '#' # shell comment", id="single-hash-is-shell"),
])
def test_strip_comments(text, expected):
    assert strip_comments(text) == expected


# ---------------------------------------------------------------- [local](remote)
@pytest.mark.parametrize("text, local, remote", [
    pytest.param(REF, " python src/avg.py <fn>", "make download file=data/; python src/avg.py <fn>", id="reference"),
    pytest.param("[a](b) x [c](d)", "a x c", "b x d", id="several"),
    pytest.param("[echo [x]](f (y))", "echo [x]", "f (y)", id="nested-balanced"),
    pytest.param("[x [a](b)](c)", "x a", "c", id="sugar-inside-local-side"),
    pytest.param("echo ${a[0]} [1]", "echo ${a[0]} [1]", "echo ${a[0]} [1]", id="index-left-alone"),
    pytest.param("a[0] (x)", "a[0] (x)", "a[0] (x)", id="space-before-paren-is-not-sugar"),
    pytest.param("a[0](x)", "a0", "ax", id="adjacent-paren-is-sugar"),
    pytest.param(r"echo \[x](y)", "echo [x](y)", "echo [x](y)", id="escaped-literal"),
    pytest.param(r"grep \[abc f", r"grep \[abc f", r"grep \[abc f", id="other-backslash-kept"),
    pytest.param("[]()", "", "", id="empty-sides"),
    pytest.param("[](x)y", "y", "xy", id="empty-local"),
    pytest.param("[x]()y", "xy", "y", id="empty-remote"),
    pytest.param("[[ -f x ]] && echo y", "[[ -f x ]] && echo y", "[[ -f x ]] && echo y", id="bash-test"),
    pytest.param("[a\nb](c\nd)", "a\nb", "c\nd", id="multi-line-sides"),
    pytest.param("echo [unclosed", "echo [unclosed", "echo [unclosed", id="unclosed-bracket-is-shell"),
])
def test_split_sugar(text, local, remote):
    assert split_sugar(text) == (local, remote)


@pytest.mark.parametrize("text, position", [
    pytest.param("[a](b", "position 3", id="paren-never-closed"),
    pytest.param("x [a]((b)", "position 5", id="nested-paren-never-closed"),
])
def test_unbalanced_sugar_is_a_value_error_naming_the_position(text, position):
    with pytest.raises(ValueError, match=rf"never closed") as err:
        split_sugar(text)
    assert position in str(err.value)


# ---------------------------------------------------------------- <placeholders>
@pytest.mark.parametrize("text, names", [
    pytest.param("cmd <a> <b_1> <a>", ["a", "b_1"], id="order-unique"),
    pytest.param("<_fn> <X9>", ["_fn", "X9"], id="underscore-and-digits"),
    pytest.param("cmd 2>&1 < in.txt", [], id="redirections"),
    pytest.param("cat <<EOF\nx\nEOF", [], id="heredoc-marker"),
    pytest.param("test a<b && c>d", [], id="comparison-with-text"),
    pytest.param("<1abc> <a-b> <a b>", [], id="not-identifiers"),
    pytest.param(r"echo \<lit> <real>", ["real"], id="escaped"),
    pytest.param("a<b>c", ["b"], id="inside-a-word"),
])
def test_placeholders(text, names):
    assert placeholders(text) == names


@pytest.mark.parametrize("value, expected", [
    pytest.param("data/1.txt", "x data/1.txt", id="path-bare"),
    pytest.param(0.001, "x 0.001", id="float-bare"),
    pytest.param("1e-5", "x 1e-5", id="exponent-bare"),
    pytest.param(3, "x 3", id="int"),
    pytest.param(True, "x true", id="true-yaml-spelling"),
    pytest.param(False, "x false", id="false-yaml-spelling"),
    pytest.param(None, "x ''", id="none-is-empty"),
    pytest.param("", "x ''", id="empty-string"),
    pytest.param([1, "a"], """x '[1, "a"]'""", id="list-json"),
    pytest.param({"k": 1}, """x '{"k": 1}'""", id="dict-json"),
    pytest.param("a b", "x 'a b'", id="space-quoted"),
    pytest.param("it's", "x 'it'\"'\"'s'", id="quote-quoted"),
])
def test_substitute_bare_context(value, expected):
    assert substitute("x <v>", {"v": value}, for_bash=True) == expected


@pytest.mark.parametrize("text, value, expected", [
    pytest.param("x '<v>'", "it's", "x 'it'\\''s'", id="single"),
    pytest.param('x "<v>"', 'a"$b`c\\', 'x "a\\"\\$b\\`c\\\\"', id="double"),
    pytest.param("x $'<v>'", "a'\\", "x $'a\\'\\\\'", id="ansi-c"),
    pytest.param('x "$(echo <v>)"', "a b", "x \"$(echo 'a b')\"", id="command-substitution-in-double"),
    pytest.param("x ${U:-<v>}", "a}b", 'x ${U:-"a}b"}', id="parameter-default"),
    pytest.param("cat <<EOF\n<v>\nEOF", "$x", "cat <<EOF\n\\$x\nEOF", id="heredoc"),
    pytest.param("cat <<'EOF'\n<v>\nEOF", "$x", "cat <<'EOF'\n$x\nEOF", id="heredoc-quoted"),
    pytest.param("echo 1 # <v>", "a b", "echo 1 # a b", id="comment"),
    pytest.param("x \\<v>", "unused", "x <v>", id="escaped-literal"),
    pytest.param("echo $((1 << 2))\nx <v>", "a b", "echo $((1 << 2))\nx 'a b'", id="arithmetic-shift-not-heredoc"),
    pytest.param("((n = 1 << 2))\nx <v>", "a b", "((n = 1 << 2))\nx 'a b'", id="arithmetic-command"),
    pytest.param("cat <<-EOF\n\tEOF\nx <v>", "a b", "cat <<-EOF\n\tEOF\nx 'a b'", id="heredoc-dash-ends"),
])
def test_substitute_quotes_for_its_context(text, value, expected):
    assert substitute(text, {"v": value}, for_bash=True) == expected


def test_substitute_without_shell_inserts_raw_text():
    assert substitute("img:<tag> <b>", {"tag": "a b", "b": False}, for_bash=False) == "img:a b false"


def test_a_value_with_a_space_is_one_bash_word():
    assert substitute("<v>", {"v": "a b"}, for_bash=True) == "'a b'"


@pytest.mark.parametrize("for_bash", [True, False], ids=["bash", "raw"])
def test_unresolved_placeholder_raises_keyerror_with_its_name(for_bash):
    with pytest.raises(KeyError) as err:
        substitute("python a.py <fn> <known>", {"known": 1}, for_bash=for_bash)
    assert err.value.args == ("fn",)


@pytest.mark.parametrize("text, value", [
    pytest.param("cat <<EOF\n<v>\nEOF", "a\nEOF\ntouch pwned", id="newline-in-heredoc"),
    pytest.param("cat <<EOF\nx <v>\nEOF", "EOF", id="delimiter-in-heredoc"),
    pytest.param("echo 1 # <v>", "\ntouch pwned", id="newline-in-comment"),
    pytest.param("echo \"${U:-'<v>'}\"", "x", id="literal-quotes-in-double-parameter"),
    pytest.param("echo `echo <v>`", "x", id="backquotes"),
    pytest.param("echo \"`echo '<v>'`\"", "x", id="quotes-in-backquotes"),
    pytest.param("echo `echo \\`echo <v>\\``", "x", id="nested-backquotes"),
])
def test_unquotable_context_is_refused(text, value):
    with pytest.raises(ValueError, match="<v>"):
        substitute(text, {"v": value}, for_bash=True)


# ---------------------------------------------------------------- multi-line commands
@pytest.mark.parametrize("text, expected", [
    pytest.param("  a  \n\n\nb\n", "a\nb", id="blank-lines-and-edges"),
    pytest.param("a\n  # note\nb", "a\nb", id="comment-line"),
    pytest.param("a   \t\nb", "a\nb", id="trailing-spaces"),
    pytest.param("python t.py \\\n  --lr 1 \\\n  --bs 2", "python t.py \\\n  --lr 1 \\\n  --bs 2", id="continuation"),
    pytest.param("python t.py \\\n  # --lr 1 \\\n  --bs 2", "python t.py \\\n  --bs 2",
                 id="commented-out-argument-in-continuation"),
    pytest.param("echo a # trailing", "echo a # trailing", id="inline-shell-comment-kept"),
    pytest.param("\n\n", "", id="empty"),
])
def test_join_lines(text, expected):
    assert join_lines(text) == expected


# ---------------------------------------------------------------- the pipeline
@pytest.mark.parametrize("text, values, local, remote", [
    pytest.param(REF, {"fn": "data/1.txt"}, "python src/avg.py data/1.txt",
                 "make download file=data/; python src/avg.py data/1.txt", id="reference"),
    pytest.param("python a.py ##old: --x 1## --lr <lr>", {"lr": 0.1}, "python a.py  --lr 0.1",
                 "python a.py  --lr 0.1", id="comment-then-value"),
    pytest.param("[echo local](echo remote <n>) <n>", {"n": "a b"}, "echo local 'a b'",
                 "echo remote 'a b' 'a b'", id="placeholder-on-both-sides"),
    pytest.param("[](\n  make download;\n)\n\n# setup\npython <f>\n", {"f": "x"}, "python x",
                 "make download;\n\n# setup\npython x".replace("\n\n# setup", ""), id="multi-line-yaml-block"),
    pytest.param("echo <v>", {"v": "a\n# b"}, "echo 'a\n# b'", "echo 'a\n# b'", id="value-lines-untouched"),
])
def test_process(text, values, local, remote):
    assert process(text, values) == (local, remote)


def test_process_reports_unresolved_and_bad_sugar():
    with pytest.raises(KeyError) as err:
        process("[](x <only_remote>) y", {})
    assert err.value.args == ("only_remote",)
    with pytest.raises(ValueError, match="never closed"):
        process("[a](b", {})


# ---------------------------------------------------------------- injection, checked by running bash
# A bash function stands for the program: it prints its argument count and each argument, with separators that
# no test value contains, so a value split into two arguments or cut short is seen. (Fast: no process per line.)
ARGV = "show"
SHOW = "show() { printf '%s\\x1f' \"$#\" \"$@\"; printf '\\x1e'; }\n"

# (template, how the argument the program receives relates to the value)
CONTEXTS = {
    "bare": (f"{ARGV} <v>", lambda v: v),
    "glued-to-text": (f"{ARGV} pre<v>post", lambda v: "pre" + v + "post"),
    "single": (f"{ARGV} '<v>'", lambda v: v),
    "double": (f'{ARGV} "<v>"', lambda v: v),
    "ansi-c": (f"{ARGV} $'<v>'", lambda v: v),
    "cmdsub-in-double": (f'{ARGV} "$(printf %s <v>)"', lambda v: v.rstrip("\n")),
    "double-in-cmdsub": (f'{ARGV} "$(printf %s "<v>")"', lambda v: v.rstrip("\n")),
    "param-default": (f"{ARGV} ${{UNSET_X:-<v>}}x", lambda v: v + "x"),
    "ansi-c-in-param-default": (f"{ARGV} ${{UNSET_X:-$'<v>'}}x", lambda v: v + "x"),
    "param-default-in-double": (f'{ARGV} "${{UNSET_X:-<v>}}"', lambda v: v),
    "heredoc": (f'{ARGV} "$(cat <<EOF\n<v>\nEOF\n)"', lambda v: v.rstrip("\n")),
    "heredoc-quoted": (f"{ARGV} \"$(cat <<'EOF'\n<v>\nEOF\n)\"", lambda v: v.rstrip("\n")),
    "after-comment": (f"{ARGV} <v> # <v>", lambda v: v),
    "subshell": (f"({ARGV} <v>)", lambda v: v),
    "case-in-cmdsub": (f'{ARGV} "$(case a in a) printf %s <v>;; esac)"', lambda v: v.rstrip("\n")),
}
NEWLINE_REFUSED = {"heredoc", "heredoc-quoted", "after-comment"}

ATTACKS = [
    "x; touch pwned", "$(touch pwned)", "`touch pwned`", "' ; touch pwned; '", '" ; touch pwned; "',
    "a\ntouch pwned", "x && touch pwned", "\\'; touch pwned #", "x | touch pwned", "$'\\''; touch pwned'",
    "}; touch pwned; ${", "\")\"; touch pwned; \"$(\"", "') ; touch pwned ; ('", "$((`touch pwned`))",
    "EOF\ntouch pwned", "\\", "'", '"', "${IFS}touch${IFS}pwned",
]


def run_bash(script: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)


def received(script: list[str], cwd) -> list[list[str]]:
    """Run the commands in one bash; the argument list each `show` call received."""
    result = run_bash(SHOW + "\n".join(script), cwd)
    assert result.returncode == 0, result.stderr
    return [record.split("\x1f")[:-1] for record in result.stdout.split("\x1e")[:-1]]


@pytest.mark.parametrize("context", list(CONTEXTS))
def test_injection_attempts_never_run_and_arrive_intact(tmp_path, context):
    template, expect = CONTEXTS[context]
    script, expected = [], []
    for value in ATTACKS:
        if context in NEWLINE_REFUSED and "\n" in value:
            with pytest.raises(ValueError):
                process(template, {"v": value})
            continue
        script.append(process(template, {"v": value})[0])
        expected.append(["1", expect(value)])
    assert received(script, tmp_path) == expected
    assert not (tmp_path / "pwned").exists(), script


def test_reference_command_runs_locally(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.txt").write_text("1,2,3")
    local, _ = process(REF.replace("python", f"'{sys.executable}'").replace("src/avg.py", "-c "
                       "'import sys; print(sum(map(float, open(sys.argv[1]).read().split(\",\"))) / 3)'"),
                       {"fn": "data/1.txt"})
    assert run_bash(local, tmp_path).stdout == "2.0\n"


ALPHABET = "abcé XYZ019'\"$`\\;&|()<>*?!#~{}[]\n\t%-=^"


def test_random_values_round_trip_as_one_argument_in_every_context(tmp_path):
    rng = random.Random(20261124)
    values = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(150)]
    script, expected = [], []
    for context, (template, expect) in CONTEXTS.items():
        for value in values:
            if context in NEWLINE_REFUSED and "\n" in value:
                continue
            script.append(process(template, {"v": value})[0])
            expected.append(["1", expect(value)])
    assert len(script) > 2000
    assert received(script, tmp_path) == expected
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("template", ["<v>", "'<v>'", '"<v>"', "$'<v>'", 'x"$(printf %s <v>)"'],
                         ids=["bare", "single", "double", "ansi-c", "cmdsub"])
def test_a_real_program_receives_the_value_as_one_argument(tmp_path, template):
    program = f"'{sys.executable}' -c 'import sys; print(repr(sys.argv[1:]))' "
    value = "a b'\"$(touch pwned)`touch pwned`;touch pwned\\"
    local, remote = process(f"[{program}](echo remote) {template}", {"v": value})
    assert remote.startswith("echo remote ")
    out = run_bash(local, tmp_path).stdout
    assert out == repr([("x" if template.startswith("x") else "") + value]) + "\n"
    assert not (tmp_path / "pwned").exists()


def test_escaped_unbalanced_sugar_is_literal_not_an_error():
    assert split_sugar(r"echo \[a](b") == ("echo [a](b", "echo [a](b")
