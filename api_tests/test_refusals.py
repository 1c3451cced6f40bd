"""API.md "Refusals": each condition's exact status, message and content
type; unknown paths and methods; bodies that are too big or malformed."""
import json
import urllib.parse

import pytest
import requests

from cjapi import (DISABLED_URL, MISCONFIGURED_URL, EXEC_PATH, JSON_TYPE, TIMEOUT, body_json, build_payload, content_type,
                   expect_json_error, expect_refusal, multipart_body, post_payload, python_lib_zip,
                   raw_request, still_serving, url)

MISSING = "Missing 'payload' parameter in POST body"
PYTHON_PATH = "Only allowed entry in 'python_path' is 'python_lib.zip'"
FILE_NAME = "Only allowed name for uploaded file is 'python_lib.zip'"
UNSAFELY = "Refusing codejail execution with unsafely=true"
ZIP = python_lib_zip({"helper_mod.py": "X = 1\n"})


def json_error_text(text):
    """Python's json error text for text, as the Python service reports it."""
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return str(err)
    raise AssertionError(f"{text!r} is valid JSON")


# --- the service refusing everything -----------------------------------------

@pytest.mark.skipif(not DISABLED_URL, reason="needs CODEJAIL_API_TESTS_DISABLED_URL: an instance with "
                    "execution switched off (tests/run-api-tests.sh starts one)")
@pytest.mark.parametrize("payload", [build_payload("x = 1"), None, "not json"], ids=["valid", "missing", "bad"])
def test_support_execution_switched_off(payload, encoding):
    resp = post_payload(payload, encoding=encoding, base=DISABLED_URL)
    expect_refusal(resp, 500, "Codejail service not enabled")


@pytest.mark.skipif(not MISCONFIGURED_URL, reason="needs CODEJAIL_API_TESTS_MISCONFIGURED_URL: an "
                    "instance whose start-up safety check failed (tests/run-api-tests.sh starts one)")
@pytest.mark.parametrize("payload", [build_payload("x = 1"), None, "not json"], ids=["valid", "missing", "bad"])
def test_deny_execution_after_failed_safety_check(payload, encoding):
    for path in ["/health/", "/health"]:
        resp = requests.get(url(path, MISCONFIGURED_URL), timeout=TIMEOUT)
        assert resp.status_code == 503, resp.text[:2000]
        assert content_type(resp) == JSON_TYPE
        assert body_json(resp)["status"] == "UNAVAILABLE", resp.text[:2000]
    resp = post_payload(payload, encoding=encoding, base=MISCONFIGURED_URL)
    expect_refusal(resp, 500, "Codejail service is not correctly configured")


# --- payload --------------------------------------------------------------

def test_support_missing_payload(encoding):
    resp = post_payload(None, encoding=encoding)
    expect_refusal(resp, 400, MISSING)


def test_support_missing_payload_other_fields_only():
    resp = requests.post(url(EXEC_PATH), data={"code": "x = 1", "globals_dict": "{}"}, timeout=TIMEOUT)
    expect_refusal(resp, 400, MISSING)


def test_support_missing_payload_empty_body():
    resp = requests.post(url(EXEC_PATH), data=b"", timeout=TIMEOUT,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    expect_refusal(resp, 400, MISSING)


def test_support_missing_payload_only_a_file():
    resp = requests.post(url(EXEC_PATH), files={"python_lib.zip": ZIP}, timeout=TIMEOUT)
    expect_refusal(resp, 400, MISSING)


INVALID_JSON = [
    "",
    "   ",
    "not json",
    "{",
    '{"code": "x",}',
    '{"code": "x" "globals_dict": {}}',
    '{"code" 1}',
    "{'code': 'x'}",
    "[1, 2",
    '{"code": "x", "globals_dict": {}} extra',
    "nan",
    '"unterminated',
    '{"code": "\\x"}',
    '{"code": "a\x01b"}',
    '{"h\u00e9llo \u2603": }',
    '{\n  "code": "x = 1",\n  "globals_dict": {},\n}',
    '\ufeff{"code": "x", "globals_dict": {}}',
    '{"a": tru}',
    "-",
]


@pytest.mark.parametrize("text", INVALID_JSON, ids=[repr(t)[:40] for t in INVALID_JSON])
def test_support_invalid_payload_json(text, encoding):
    resp = post_payload(text, encoding=encoding)
    expect_refusal(resp, 400, f"Unable to parse payload JSON: {json_error_text(text)}")


# (payload text, JSON path, reason) as the Python service's jsonschema reports them.
SCHEMA_ERRORS = [
    ('{"globals_dict": {}}', "$", "'code' is a required property"),
    ("{}", "$", "'code' is a required property"),
    ('{"code": "x = 1"}', "$", "'globals_dict' is a required property"),
    ('{"code": 5}', "$", "'globals_dict' is a required property"),
    ("[]", "$", "[] is not of type 'object'"),
    ('"x"', "$", "'x' is not of type 'object'"),
    ("5", "$", "5 is not of type 'object'"),
    ("null", "$", "None is not of type 'object'"),
    ("Infinity", "$", "inf is not of type 'object'"),
    ('{"code": 5, "globals_dict": {}}', "$.code", "5 is not of type 'string'"),
    ('{"code": null, "globals_dict": {}}', "$.code", "None is not of type 'string'"),
    ('{"code": true, "globals_dict": {}}', "$.code", "True is not of type 'string'"),
    ('{"code": 1.0, "globals_dict": {}}', "$.code", "1.0 is not of type 'string'"),
    ('{"code": 1e5, "globals_dict": {}}', "$.code", "100000.0 is not of type 'string'"),
    ('{"code": 1E-7, "globals_dict": {}}', "$.code", "1e-07 is not of type 'string'"),
    ('{"code": NaN, "globals_dict": {}}', "$.code", "nan is not of type 'string'"),
    ('{"code": 12345678901234567890123, "globals_dict": {}}', "$.code",
     "12345678901234567890123 is not of type 'string'"),
    ('{"code": {"a": [1, "b", null, true]}, "globals_dict": {}}', "$.code",
     "{'a': [1, 'b', None, True]} is not of type 'string'"),
    ('{"code": "x", "globals_dict": []}', "$.globals_dict", "[] is not of type 'object'"),
    ('{"code": "x", "globals_dict": "\u00e9"}', "$.globals_dict", "'\u00e9' is not of type 'object'"),
    ('{"code": "x", "globals_dict": "it\'s"}', "$.globals_dict", "\"it's\" is not of type 'object'"),
    ('{"code": "x", "globals_dict": {}, "unsafely": "yes"}', "$.unsafely",
     "'yes' is not of type 'boolean'"),
    ('{"code": "x", "globals_dict": {}, "unsafely": 1}', "$.unsafely", "1 is not of type 'boolean'"),
    ('{"code": "x", "globals_dict": {}, "python_path": [5]}', "$.python_path[0]",
     "5 is not of type 'string'"),
    ('{"code": "x", "globals_dict": {}, "python_path": "python_lib.zip"}', "$.python_path",
     "'python_lib.zip' is not valid under any of the given schemas"),
    ('{"code": "x", "globals_dict": {}, "slug": 5}', "$.slug",
     "5 is not valid under any of the given schemas"),
    ('{"code": "x", "globals_dict": {}, "limit_overrides_context": 1}', "$.limit_overrides_context",
     "1 is not valid under any of the given schemas"),
]


@pytest.mark.parametrize("text,path,reason", SCHEMA_ERRORS, ids=[t[0][:50] for t in SCHEMA_ERRORS])
def test_support_payload_schema_mismatch(text, path, reason, encoding):
    resp = post_payload(text, encoding=encoding)
    expect_refusal(resp, 400, f"Payload JSON did not match schema at path {path}: {reason}")


def test_support_missing_code_message_exactly():
    resp = post_payload(json.dumps({"globals_dict": {"x": 1}}))
    expect_refusal(resp, 400, "Payload JSON did not match schema at path $: 'code' is a required property")


@pytest.mark.parametrize("python_path", [["other"], ["python_lib.zip", "/etc"], ["../python_lib.zip"],
                                         ["/"], [""], ["python_lib.zip/"]])
def test_deny_python_path_other_than_python_lib_zip(python_path, encoding):
    resp = post_payload(build_payload("x = 1", {}, python_path=python_path), encoding=encoding)
    expect_refusal(resp, 400, PYTHON_PATH)


@pytest.mark.parametrize("files", [
    {"other.zip": ZIP},
    {"../python_lib.zip": ZIP},
    {"/tmp/python_lib.zip": ZIP},
    {"python_lib.zip": ZIP, "jailed_code": b"print(1)"},
], ids=["other", "dotdot", "absolute", "extra"])
def test_deny_uploaded_file_with_another_name(files):
    resp = post_payload(build_payload("x = 1", {}, python_path=["python_lib.zip"]), files=files)
    expect_refusal(resp, 400, FILE_NAME)


def test_deny_unsafely_true(encoding):
    resp = post_payload(build_payload("x = 1", {}, unsafely=True), encoding=encoding)
    expect_refusal(resp, 400, UNSAFELY)


def test_support_refusal_order():
    """The Python service checks schema, python_path, file names, unsafely, in that order."""
    everything_wrong = build_payload("x = 1", {}, python_path=["/etc"], unsafely=True)
    expect_refusal(post_payload(everything_wrong, files={"evil": b"x"}), 400, PYTHON_PATH)
    bad_file_unsafely = build_payload("x = 1", {}, unsafely=True)
    expect_refusal(post_payload(bad_file_unsafely, files={"evil": b"x"}), 400, FILE_NAME)
    schema_first = json.dumps({"code": 1, "globals_dict": {}, "python_path": ["/etc"], "unsafely": True})
    expect_refusal(post_payload(schema_first, files={"evil": b"x"}), 400,
                   "Payload JSON did not match schema at path $.code: 1 is not of type 'string'")


# --- paths and methods --------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("POST", "/api/v0/nope"), ("GET", "/api/v1/code-exec"),
    ("GET", "/api/v0/code-exec/../../etc/passwd"), ("POST", "/"),
])
def test_support_unknown_path_is_404_json(method, path):
    resp = requests.request(method, url(path), timeout=TIMEOUT)
    assert resp.status_code == 404, resp.text[:500]
    assert content_type(resp) == JSON_TYPE
    assert isinstance(body_json(resp).get("error"), str)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"])
@pytest.mark.parametrize("with_body", [False, True], ids=["no-body", "body"])
def test_support_other_method_is_405_framework_detail(method, with_body):
    """The framework's own refusal: its key and text, the method's name."""
    data = {"payload": build_payload("x = 1")} if with_body else None
    resp = requests.request(method, url(EXEC_PATH), data=data, timeout=TIMEOUT)
    assert resp.status_code == 405, resp.text[:500]
    assert content_type(resp) == JSON_TYPE
    assert body_json(resp) == {"detail": f'Method "{method}" not allowed.'}
    assert resp.headers.get("Allow") == "POST, OPTIONS"


def test_support_head_is_405_without_body():
    resp = requests.head(url(EXEC_PATH), timeout=TIMEOUT)
    assert resp.status_code == 405
    assert resp.content == b""


def test_support_options_is_the_framework_metadata():
    resp = requests.options(url(EXEC_PATH), timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text[:500]
    assert content_type(resp) == JSON_TYPE
    meta = body_json(resp)
    assert list(meta) == ["name", "description", "renders", "parses"]
    assert meta["name"] == "Code Exec"
    assert isinstance(meta["description"], str) and meta["description"]
    assert meta["renders"] == ["application/json"]
    assert meta["parses"] == ["application/x-www-form-urlencoded", "multipart/form-data"]


# --- bodies that are too big, too many or malformed ----------------------------

def test_support_oversized_body_refused():
    """40 MiB, over the default 32 MiB cap: a 4xx JSON error, not a hang."""
    boundary = "codejailapitestsboundary"
    body = multipart_body(boundary, [("payload", None, build_payload("x = 1").encode()),
                                     ("python_lib.zip", "python_lib.zip", b"\0" * (40 << 20))])
    status, headers, answer = raw_request(
        "POST", EXEC_PATH,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))},
        body, deadline_s=60)
    expect_json_error(status, headers, answer)
    still_serving()


def test_support_too_many_fields_refused():
    fields = "&".join(f"f{i}=1" for i in range(100000))
    body = f"payload={requests.utils.quote(build_payload('x = 1'))}&{fields}".encode()
    status, headers, answer = raw_request(
        "POST", EXEC_PATH,
        {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}, body)
    expect_json_error(status, headers, answer)
    still_serving()


def test_support_too_many_multipart_parts_refused():
    boundary = "codejailapitestsboundary"
    parts = [("payload", None, build_payload("x = 1").encode())]
    parts += [(f"f{i}", None, b"1") for i in range(20000)]
    body = multipart_body(boundary, parts)
    status, headers, answer = raw_request(
        "POST", EXEC_PATH,
        {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))},
        body)
    expect_json_error(status, headers, answer)
    still_serving()


PAYLOAD = build_payload("x = 1").encode()
MALFORMED = {
    "no-boundary-parameter": ("multipart/form-data",
                              b'--b\r\nContent-Disposition: form-data; name="payload"\r\n\r\n' + PAYLOAD
                              + b"\r\n--b--\r\n"),
    "body-without-boundary": ("multipart/form-data; boundary=xyz", b"this is not multipart at all"),
    "unterminated-part": ("multipart/form-data; boundary=xyz",
                          b'--xyz\r\nContent-Disposition: form-data; name="payload"\r\n\r\n' + PAYLOAD),
    "headers-never-end": ("multipart/form-data; boundary=xyz",
                          b'--xyz\r\nContent-Disposition: form-data; name="payload"\r\n' + PAYLOAD),
    "no-content-disposition": ("multipart/form-data; boundary=xyz",
                               b"--xyz\r\nContent-Type: text/plain\r\n\r\n" + PAYLOAD + b"\r\n--xyz--\r\n"),
    "empty-body": ("multipart/form-data; boundary=xyz", b""),
    "only-closing-boundary": ("multipart/form-data; boundary=xyz", b"--xyz--\r\n"),
    "garbage-binary": ("multipart/form-data; boundary=xyz", bytes(range(256)) * 64),
    "huge-part-header": ("multipart/form-data; boundary=xyz",
                         b'--xyz\r\nContent-Disposition: form-data; name="' + b"p" * 1_000_000
                         + b'"\r\n\r\nx\r\n--xyz--\r\n'),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_support_malformed_multipart_refused(case):
    ctype, body = MALFORMED[case]
    status, headers, answer = raw_request(
        "POST", EXEC_PATH, {"Content-Type": ctype, "Content-Length": str(len(body))}, body, deadline_s=30)
    expect_json_error(status, headers, answer)
    still_serving()


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/xml; charset=utf-8", None])
def test_support_unsupported_content_type_is_415_framework_detail(ctype):
    body = PAYLOAD if ctype == "application/json" else b"payload=" + PAYLOAD
    headers = {"Content-Length": str(len(body))}
    if ctype is not None:
        headers["Content-Type"] = ctype
    status, got_headers, answer = raw_request("POST", EXEC_PATH, headers, body, deadline_s=30)
    assert status == 415, answer[:500]
    assert got_headers.get("content-type") == JSON_TYPE
    assert json.loads(answer) == {"detail": f'Unsupported media type "{ctype or ""}" in request.'}


# --- what the reference accepts, this service accepts ----------------------------

def fields_body(n_fields, encoding):
    """payload plus n_fields - 1 other fields, as (content type, body)."""
    others = [(f"f{i}", "1") for i in range(n_fields - 1)]
    if encoding == "urlencoded":
        pairs = [("payload", build_payload("x = 1"))] + others
        return "application/x-www-form-urlencoded", urllib.parse.urlencode(pairs).encode()
    boundary = "codejailapitestsboundary"
    parts = [("payload", None, build_payload("x = 1").encode())]
    parts += [(name, None, value.encode()) for name, value in others]
    return f"multipart/form-data; boundary={boundary}", multipart_body(boundary, parts)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_support_1000_form_fields_accepted_1001_refused(encoding):
    """Django's DATA_UPLOAD_MAX_NUMBER_FIELDS: 1000 fields run, one more is refused."""
    for n, runs in ((1000, True), (1001, False)):
        ctype, body = fields_body(n, encoding)
        status, headers, answer = raw_request(
            "POST", EXEC_PATH, {"Content-Type": ctype, "Content-Length": str(len(body))}, body)
        if runs:
            assert status == 200, answer[:500]
            assert json.loads(answer) == {"globals_dict": {"x": 1}}
        else:
            expect_json_error(status, headers, answer)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_support_python_lib_zip_in_path_without_the_upload_is_not_run(encoding):
    """The reference cannot copy the missing file into the sandbox: 200, the
    input globals unchanged (NaN too), and its emsg."""
    text = build_payload("x = 2\nopen('tmp/ran', 'w')", {"x": float("nan"), "y": [1]},
                         python_path=["python_lib.zip"])
    resp = post_payload(text, encoding=encoding)
    assert resp.status_code == 200, resp.text[:500]
    assert content_type(resp) == JSON_TYPE
    assert resp.content.decode() == ('{"globals_dict": {"x": NaN, "y": [1]}, '
                                     '"emsg": "Couldn\'t execute sandboxed code: See logs."}')
