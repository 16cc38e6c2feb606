"""The learner's exercises and their checker (minialex/learn/): right answers pass, each typical
wrong answer fails with its own message, untouched exercises say "not written yet", ``learn
start`` copies the files and never overwrites, and the commands' exit codes and one-line errors."""

import os
import sys

import pytest

from minialex.__main__ import main as minialex_main
from minialex.learn import OPS, LearnInputError, check, start
from minialex.learn.checker import MISTAKES, SECTIONS
from minialex.learn.cli import EXERCISES, exercise_files

from .solutions import IMPORTED, RIGHT, WRONG


def write(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(source)
    return str(path)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("kind", ["written", "imported"])
def test_right_answers_pass(tmp_path, op, kind):
    source = RIGHT[op] if kind == "written" else IMPORTED[op]
    report = check(op, write(tmp_path, f"{op}.py", source))
    assert report.passed, str(report)
    assert report.lines and all(line.startswith("OK") for line in report.lines)
    assert str(report).endswith(f"{op}: all correct")


def test_the_checks_compare_with_finite_differences(tmp_path):
    report = check("conv2d", write(tmp_path, "conv2d.py", RIGHT["conv2d"]))
    assert any(line.startswith("OK     col2im") for line in report.lines)
    for grad in ("dx", "dw", "db"):
        line = next(x for x in report.lines if f"conv2d_backward {grad}" in x)
        assert "vs the reference" in line and "vs finite differences" in line


@pytest.mark.parametrize("name, op, source, mistake, what", WRONG, ids=[w[0] for w in WRONG])
def test_each_typical_mistake_gets_its_message(tmp_path, name, op, source, mistake, what):
    report = check(op, write(tmp_path, f"{op}.py", source))
    assert not report.passed
    lines = report.lines
    wrong = [i for i, line in enumerate(lines) if line.startswith(f"WRONG  {what}")]
    assert wrong, str(report)
    assert lines[wrong[0] + 1] == f"       hint: {MISTAKES[mistake]}", str(report)
    assert any(word in lines[wrong[0]] for word in ("rel error", "NaN", "None", "has shape"))


def test_without_the_shift_both_loss_and_gradient_say_so(tmp_path):
    source = next(w[2] for w in WRONG if w[0] == "softmax without the max shift")
    report = str(check("softmax_cross_entropy", write(tmp_path, "sce.py", source)))
    assert report.count(MISTAKES["softmax_shift"]) == 2


def test_every_message_is_distinct_and_names_its_section():
    messages = list(MISTAKES.values())
    assert len(set(messages)) == len(messages)
    for text in messages:
        assert ".md" in text or "in place" in text


def test_the_eight_mistakes_of_the_issue_are_diagnosed():
    diagnosed = {w[3] for w in WRONG}
    assert {"transposed_dw", "missing_db", "col2im_assign", "pool_ties", "lrn_cross", "dropout_scale",
            "softmax_shift", "sgd_decay_after", "conv_groups"} <= diagnosed


def test_a_wrong_answer_no_variant_explains_gets_the_section(tmp_path):
    source = RIGHT["relu"].replace("return dout * (y > 0)  # BACK", "return 2 * dout * (y > 0)")
    report = check("relu", write(tmp_path, "relu.py", source))
    assert not report.passed
    assert f"hint: not one of the usual mistakes; compare it with {SECTIONS['relu']}" in str(report)


@pytest.mark.parametrize("op", OPS)
def test_an_untouched_exercise_is_not_written_yet(tmp_path, op):
    start(str(tmp_path / "ex"))
    report = check(op, str(tmp_path / "ex" / f"{op}.py"))
    assert not report.passed
    assert "not written yet (NotImplementedError)" in report.lines[0]
    assert "Traceback" not in str(report)


def test_a_function_that_raises_is_one_line_of_the_report(tmp_path):
    source = RIGHT["linear"].replace("return dout @ w, dw, db", "return dout @ w.T, dw, db")
    report = check("linear", write(tmp_path, "linear.py", source))
    assert not report.passed
    assert any(line.startswith("WRONG  linear_backward: raised ValueError") for line in report.lines)


def test_the_learners_module_stays_out_of_sys_modules(tmp_path):
    before = set(sys.modules)
    check("relu", write(tmp_path, "relu.py", RIGHT["relu"]))
    assert set(sys.modules) == before


def test_exercise_files_are_in_the_package():
    assert sorted(exercise_files()) == sorted(f"{op}.py" for op in OPS)
    for name in exercise_files():
        text = open(os.path.join(EXERCISES, name)).read()
        assert "raise NotImplementedError" in text and "---- to write" in text and "docs/" in text
    # packages = find: (setup.cfg) ships them: exercises/ is a package
    assert os.path.isfile(os.path.join(EXERCISES, "__init__.py"))


def test_start_copies_and_never_overwrites(tmp_path):
    target = tmp_path / "mine"
    written = start(str(target))
    assert sorted(os.listdir(target)) == sorted(exercise_files())
    assert len(written) == len(OPS)
    for name in exercise_files():
        assert (target / name).read_text() == open(os.path.join(EXERCISES, name)).read()
    (target / "conv2d.py").write_text("# my work\n")
    with pytest.raises(LearnInputError, match="refusing to overwrite"):
        start(str(target))
    assert (target / "conv2d.py").read_text() == "# my work\n"


def run(capsys, *argv):
    code = minialex_main(["learn", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    return err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_start(tmp_path, capsys):
    code, out, err = run(capsys, "start", str(tmp_path / "ex"))
    assert code == 0 and "copied 8 exercise files" in out and err == ""
    code, out, err = run(capsys, "start", str(tmp_path / "ex"))
    assert code == 2 and one_line(err) and "refusing to overwrite" in err


def test_cli_check_exit_codes(tmp_path, capsys):
    right = write(tmp_path, "right.py", RIGHT["linear"])
    code, out, err = run(capsys, "check", "linear", right)
    assert code == 0 and out.rstrip().endswith("linear: all correct")
    wrong = write(tmp_path, "wrong.py", WRONG[5][2])
    code, out, err = run(capsys, "check", "linear", wrong)
    assert code == 1 and MISTAKES["transposed_dw"] in out


@pytest.mark.parametrize("argv, says", [
    (["check", "conv3d", "x.py"], "invalid choice: 'conv3d'"),
    (["check", "relu", "missing.py"], "missing.py: no such file"),
    (["check", "relu", "syntax.py"], "does not import: SyntaxError at line 1"),
    (["check", "relu", "broken.py"], "does not import: ModuleNotFoundError"),
    (["check", "relu", "empty.py"], "has no relu_forward, relu_backward"),
    (["check", "relu"], "the following arguments are required: FILE"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "syntax.py", "def relu_forward(x:\n")
    write(tmp_path, "broken.py", "import minialex_no_such_module\n")
    write(tmp_path, "empty.py", "x = 1\n")
    code, out, err = run(capsys, *argv)
    assert code == 2, err
    assert one_line(err), err
    assert says in err


def test_learn_is_a_command_of_minialex(capsys):
    assert minialex_main(["--help"]) == 0
    assert "learn" in capsys.readouterr().out
