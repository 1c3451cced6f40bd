"""API.md "Globals" and "emsg format": what comes back after a run."""
import json
import math
import re

import pytest

from cjapi import OVERRIDE_CONTEXT, expect_ok, post_payload, run, Outcome


def test_support_basic_execution(encoding):
    outcome = run("x = x + 1", {"x": 16}, encoding=encoding)
    assert outcome.ok, outcome
    assert outcome.globals == {"x": 17}


def test_support_payload_as_edx_platform_sends_it(encoding):
    """All keys present, nulls where edx-platform leaves them unset, unsafely false."""
    text = json.dumps({"code": "y = x * 2", "globals_dict": {"x": 21}, "python_path": None,
                       "limit_overrides_context": None, "slug": None, "unsafely": False})
    outcome = Outcome(post_payload(text, encoding=encoding), 0)
    assert outcome.globals == {"x": 21, "y": 42}


def test_support_slug_and_empty_python_path():
    outcome = run("y = 1", {}, python_path=[], slug="block-v1:Org+Course+Run+type@problem+block@abc")
    assert outcome.globals == {"y": 1}


def test_support_minimal_payload():
    text = json.dumps({"code": "y = 1", "globals_dict": {}})
    assert Outcome(post_payload(text), 0).globals == {"y": 1}


def test_support_empty_code_returns_input_globals():
    assert run("", {"a": 1, "b": [1, "x"]}).globals == {"a": 1, "b": [1, "x"]}


def test_support_non_serialisable_globals_are_omitted():
    assert run("out1 = object()\nout2 = 'hi'").globals == {"out2": "hi"}


def test_support_modules_functions_classes_are_omitted():
    code = "import math\ndef f():\n    pass\nclass C:\n    pass\ninst = C()\nkept = math.floor(2.5)"
    assert run(code).globals == {"kept": 2}


def test_support_builtins_dropped():
    g = run("x = 1").globals
    assert "__builtins__" not in g and g == {"x": 1}


def test_support_json_types_round_trip():
    given = {"none": None, "t": True, "f": False, "i": -7, "big": 2 ** 70, "fl": 0.1,
             "s": "h\u00e9llo \u2603 \U0001d11e \"quoted\" \\ \n\t\u0000", "l": [1, [2, {"a": None}]],
             "d": {"k": {"nested": [1.5, "x"]}}, "empty": {}, "el": []}
    code = "copy = dict(globals())\ndel copy['__builtins__']\nsum_ = 0.1 + 0.2\nbig2 = big * 2"
    g = expect_ok(run(code, given))
    expected = dict(given)
    expected.update({"copy": given, "sum_": 0.1 + 0.2, "big2": 2 ** 71})
    assert g == expected


def test_support_unicode_in_code_and_globals():
    g = expect_ok(run("u = s.upper() + '\u2603'\nn = len(s)", {"s": "h\u00e9llo \U0001d11e"}))
    assert g["u"] == "H\u00c9LLO \U0001d11e\u2603" and g["n"] == 7


def test_support_tuples_become_lists():
    assert expect_ok(run("t = (1, (2, 'x'))"))["t"] == [1, [2, "x"]]


def test_support_bytes_are_decoded_recursively():
    code = ("a = b'abc'\nb = [b'x', (1, b'y')]\nc = {'k': b'v', b'bk': [b'w']}\n"
            "d = '\u00e9'.encode('utf-8')")
    assert expect_ok(run(code)) == {"a": "abc", "b": ["x", [1, "y"]], "c": {"k": "v", "bk": ["w"]},
                                    "d": "\u00e9"}


def test_support_values_that_do_not_round_trip_are_dropped():
    code = ("bad_bytes = b'\\xff'\nnested_bad = [1, b'\\xfe']\nsurrogate = '\\ud800'\n"
            "hidden = [1, object()]\ntuple_keys = {(1, 2): 3}\nok = 1.5\nint_keys = {1: 'a'}")
    assert expect_ok(run(code)) == {"ok": 1.5, "int_keys": {"1": "a"}}


def test_support_exception_returns_input_globals_unchanged():
    given = {"x": 1, "l": [1, 2], "s": "keep"}
    outcome = run("x = 2\nl.append(3)\ns = 'changed'\nnew = 1\n1 / 0", given)
    assert outcome.globals == given
    assert outcome.error_line == "ZeroDivisionError: division by zero"


# --- NaN and Infinity -------------------------------------------------------

NAN_PAYLOAD = ('{"code": "out = inn\\nbig2 = big\\nneg2 = neg\\nlst2 = lst\\n'
               'made = float(\'nan\')\\nmade_inf = float(\'-inf\')", '
               '"globals_dict": {"inn": NaN, "big": Infinity, "neg": -Infinity, '
               '"lst": [NaN, Infinity, -Infinity, 1.5]}}')


def test_support_nan_and_infinity_round_trip(encoding):
    resp = post_payload(NAN_PAYLOAD, encoding=encoding)
    outcome = Outcome(resp, 0)
    assert outcome.ok, outcome
    text = outcome.text
    for pattern in [r'"out":\s*NaN[,}]', r'"big2":\s*Infinity[,}]', r'"neg2":\s*-Infinity[,}]',
                    r'"lst2":\s*\[NaN,\s*Infinity,\s*-Infinity,\s*1\.5\]', r'"made":\s*NaN[,}]',
                    r'"made_inf":\s*-Infinity[,}]', r'"inn":\s*NaN[,}]']:
        assert re.search(pattern, text), f"{pattern} not in {text}"
    assert "null" not in text and "nan" not in text.replace("NaN", "")
    g = json.loads(text)["globals_dict"]
    assert math.isnan(g["out"]) and math.isnan(g["made"])
    assert g["big2"] == math.inf and g["neg2"] == -math.inf and g["made_inf"] == -math.inf
    assert math.isnan(g["lst2"][0]) and g["lst2"][1:] == [math.inf, -math.inf, 1.5]


def test_support_nan_in_input_globals_kept_on_error():
    text = '{"code": "raise ValueError(1)", "globals_dict": {"inn": NaN, "big": [Infinity, -Infinity]}}'
    outcome = Outcome(post_payload(text), 0)
    assert outcome.emsg and outcome.error_line == "ValueError: 1"
    assert re.search(r'"inn":\s*NaN[,}]', outcome.text), outcome.text
    assert re.search(r'"big":\s*\[Infinity,\s*-Infinity\]', outcome.text), outcome.text


# --- emsg -------------------------------------------------------------------

TRACEBACK = re.compile(
    r'Traceback \(most recent call last\):\n'
    r'  File "/tmp/codejail-[^/"]+/jailed_code", line \d+, in <module>\n'
    r'    exec\(code, g_dict\)\n'
    r'(?:    \^+\n)?'
    r'  File "<string>", line 3, in <module>\n'
    r'ZeroDivisionError: division by zero\n\Z')


def test_support_exception_emsg_format():
    outcome = run("x = 2\ny = 3\n1 / 0", {"x": 1})
    assert outcome.emsg.startswith(
        "Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n")
    assert outcome.emsg.endswith("\\nZeroDivisionError: division by zero\\n' with status code: 1")
    assert TRACEBACK.match(outcome.stderr), outcome.stderr
    assert outcome.stdout == b"" and outcome.status == 1


def test_support_emsg_non_ascii_exception_text():
    outcome = run("raise ValueError('h\u00e9llo \u2603')")
    assert outcome.error_line == "ValueError: h\u00e9llo \u2603"
    assert "\\xc3\\xa9" in outcome.emsg  # raw bytes, shown as Python's bytes repr


@pytest.mark.parametrize("data", [
    b"it's \xff\t\x00\x7f\\ \r\n",
    b'say "hi"\n',
    b"both ' and \"\n",
    b"\x80\xfe plain \x01",
], ids=["single-quote", "double-quote", "both-quotes", "high-bytes"])
def test_support_emsg_is_python_bytes_repr(data):
    code = (f"import os, sys\nos.write(1, {data!r})\nsys.stderr.buffer.write({data!r})\n"
            "sys.stderr.flush()\nsys.exit(2)")
    outcome = run(code)
    assert outcome.emsg == (f"Couldn't execute jailed code: stdout: {data!r}, stderr: {data!r} "
                            "with status code: 2")


def test_support_exit_status():
    outcome = run("import sys\nsys.exit(3)")
    assert outcome.emsg == "Couldn't execute jailed code: stdout: b'', stderr: b'' with status code: 3"


def test_support_killed_by_signal_status():
    outcome = run("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert outcome.emsg == "Couldn't execute jailed code: stdout: b'', stderr: b'' with status code: -15"


def test_support_abort_status():
    assert run("import os\nos.abort()").status == -6


def test_support_print_goes_nowhere():
    g = expect_ok(run("import sys\nprint('hello')\nsys.stdout.write('more')\nx = 1"))
    assert g == {"x": 1}


def test_support_stderr_alone_is_not_an_error():
    g = expect_ok(run("import sys\nsys.stderr.write('warning text\\n')\nx = 1"))
    assert g == {"x": 1}


def test_support_corrupted_stdout():
    outcome = run("import os\nos.write(1, b'garbage')\nx = 5", {"x": 1})
    assert outcome.emsg == "Sandboxed code produced corrupted stdout."
    assert outcome.globals == {"x": 1}


def test_support_exit_zero_before_output_is_corrupted_stdout():
    outcome = run("import sys\nx = 5\nsys.exit(0)", {"x": 1})
    assert outcome.emsg == "Sandboxed code produced corrupted stdout."
    assert outcome.globals == {"x": 1}


def test_support_large_stderr():
    outcome = run("import sys\nsys.stderr.write('e' * 200000)\nsys.stderr.flush()\nsys.exit(4)")
    assert outcome.status == 4
    assert outcome.stderr.startswith("e" * 1000)


def test_support_large_globals():
    big = "y" * 2_000_000
    g = expect_ok(run("n = len(s)\nt = s[:10]", {"s": big}))
    assert g["n"] == 2_000_000 and g["t"] == "y" * 10 and g["s"] == big


def test_support_duplicate_payload_keys_last_wins():
    text = '{"code": "x = 1", "globals_dict": {"a": 1}, "code": "x = 2", "globals_dict": {"b": 2}}'
    assert Outcome(post_payload(text), 0).globals == {"b": 2, "x": 2}


@pytest.mark.parametrize("code", ["x = (", "def f(:\n    pass", "\tx = 1"],
                         ids=["unclosed", "bad-def", "indent"])
def test_support_syntax_error_reported(code):
    outcome = run(code, {"a": 1})
    assert outcome.globals == {"a": 1}
    assert outcome.status == 1
    assert outcome.error_line.startswith(("SyntaxError: ", "IndentationError: ")), outcome.emsg



def test_support_globals_over_8_mib_are_returned():
    """The reference returns globals of any size its memory allows; 12 MiB
    went in and come back with what the code added."""
    big = "z" * (12 << 20)
    g = expect_ok(run("n = len(s)", {"s": big}, limit_overrides_context=OVERRIDE_CONTEXT))
    assert g["n"] == 12 << 20 and g["s"] == big
