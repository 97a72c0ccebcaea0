"""Hostile input through the dashboard: browser uploads, the server's upload cap, test indices typed
or forged, and host names that are not this machine's.

Uploads go through the shared server's Predict page one after another, in the corpus's order; after
every few refused files a good digit is uploaded and its answer checked, to show that the server
still answers. A file name must be shown as the literal text it is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from reliability import browser as pages
from reliability.processes import PROJECT_ROOT, suite_environment, websocket_handshake

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.browser]

# In the browser, a good digit is uploaded after this many bad files, to show the server still answers.
GOOD_EVERY = 3
# The uploader's own refusals (type and size) come from Streamlit's frontend.
UPLOADER_REFUSALS = ("not allowed", "must be", "or smaller")
UPLOAD_CAP_MB = 5


@pytest.fixture(scope="module")
def uploads_page(server, server_page):
    pages.open_upload_tab(server_page, server.url)
    return server_page


@pytest.fixture(scope="module")
def refused_so_far() -> list[str]:
    return []


def test_each_upload_is_refused_clearly_or_predicted_right(
    upload_name, files, good, uploads_page, refused_so_far, figures
):
    case = files[upload_name]
    outcome = pages.upload(uploads_page, case.name, case.content, case.mime)
    figures.note("slowest answer to an upload", f"{max(outcome.seconds, _slowest(figures)):.1f} s")
    if case.expect == "predict":
        clean = outcome.kind == "prediction" and outcome.digit == case.digit
    elif outcome.kind == "refused":
        clean = any(phrase in outcome.text for phrase in UPLOADER_REFUSALS)
    else:
        clean = outcome.kind == "error" and case.name in outcome.text and outcome.links_or_images == 0
    detail = f"{case.what}: {outcome.kind} in {outcome.seconds:.1f} s: {outcome.text[:200]}"
    if outcome.links_or_images:
        detail += f" ({outcome.links_or_images} link/image elements rendered from the file name)"
    figures.tally("bad inputs handled cleanly in the browser", clean)
    assert clean, detail
    if case.expect == "refuse":
        refused_so_far.append(case.name)
        if len(refused_so_far) % GOOD_EVERY == 0:
            answer = pages.upload(uploads_page, good.name, good.content, good.mime)
            right = answer.kind == "prediction" and answer.digit == good.digit
            assert figures.tally("good uploads between them answered correctly", right), (
                f"a good upload after {case.name}: {answer.kind} {answer.text[:100]}"
            )


def _slowest(figures) -> float:
    return float(figures.values.get("slowest answer to an upload", "0 s").split()[0])


def test_the_server_survives_the_uploads(server, uploads_page, good, figures):
    answer = pages.upload(uploads_page, good.name, good.content, good.mime)
    figures.note("stale answers left after a removal, cleared by a rerun", str(len(pages.STALE_ANSWERS)))
    assert answer.kind == "prediction" and answer.digit == good.digit, f"{answer.kind} {answer.text[:100]}"
    assert server.healthy()
    assert server.tracebacks() == 0, server.log_text()[-1500:]


@pytest.fixture(scope="module")
def cap(server, uploads_page, good, figures) -> dict[str, object]:
    """The server's answers to uploads around its cap, replaying the page's own upload request.

    A good upload from the page is watched to learn its upload URL and XSRF header; the same request
    is then sent with a body just under and just over the cap, and streamed with no Content-Length.
    """
    page = uploads_page
    pages.clear_uploads(page)
    with page.expect_request(
        lambda request: "/_stcore/upload_file/" in request.url and request.method == "PUT"
    ) as info:
        page.locator(f"{pages.UPLOADER} input[type=file]").set_input_files(
            files=[{"name": good.name, "mimeType": good.mime, "buffer": good.content}]
        )
    request = info.value
    headers = {name: value for name, value in request.all_headers().items() if name.lower() == "x-xsrftoken"}
    base = request.url.rsplit("/", 1)[0]
    answers: dict[str, object] = {}
    for label, size in (("under", UPLOAD_CAP_MB * 1024 * 1024 - 4096), ("over", UPLOAD_CAP_MB * 1024 * 1024 + 1)):
        response = page.request.put(
            f"{base}/reliability-{size}",
            headers=headers,
            multipart={"file": {"name": "big.png", "mimeType": "image/png", "buffer": bytes(size)}},
            timeout=120_000,
        )
        answers[label] = response.status
    answers["chunked"] = page.evaluate(
        """async ([url, token, size]) => {
            // A chunked body carries no Content-Length, so the server must count as it reads.
            const stream = new ReadableStream({start(controller) {
                const chunk = new Uint8Array(1 << 20);
                for (let sent = 0; sent < size; sent += chunk.length) controller.enqueue(chunk);
                controller.close();
            }});
            try {
                const response = await fetch(url, {method: 'PUT', body: stream, duplex: 'half',
                    headers: {'X-Xsrftoken': token, 'Content-Type': 'multipart/form-data; boundary=x'}});
                return response.status;
            } catch (error) { return 'connection closed: ' + error; }
        }""",
        [f"{base}/reliability-chunked", headers.get("x-xsrftoken", ""), (UPLOAD_CAP_MB + 3) * 1024 * 1024],
    )
    answers["page"] = pages.upload(page, "over-cap.png", good.content + bytes(UPLOAD_CAP_MB * 1024 * 1024), good.mime)
    figures.note(
        "upload cap",
        f"{UPLOAD_CAP_MB} MB; the server answers {answers['under']} just under, {answers['over']} "
        f"just over and {answers['chunked']} for a chunked body",
    )
    return answers


def test_a_file_just_under_the_cap_is_accepted_by_the_server(cap):
    assert cap["under"] == 204, cap


def test_a_file_just_over_the_cap_is_refused_by_the_server(cap):
    assert cap["over"] == 413, cap


def test_a_streamed_body_without_a_length_over_the_cap_is_refused(cap):
    assert cap["chunked"] == 413 or str(cap["chunked"]).startswith("connection closed"), cap


def test_the_page_refuses_a_file_over_the_cap_with_a_message(cap, server):
    assert cap["page"].kind == "refused", cap["page"]
    assert server.healthy()


@pytest.mark.parametrize("typed", ["-1", "10000", "99999999999999999999", "abc", "1e9", "5.5", "-0"])
def test_a_typed_test_index_is_bounded(typed, server, server_page):
    page = server_page
    page.goto(f"{server.url}/predict")  # on its first tab, the test index's
    field = page.locator('[data-testid="stNumberInput"] input')
    field.wait_for(timeout=120_000)
    field.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(typed)
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)
    captions = page.get_by_text("Test image #").all_inner_texts()
    index_text = captions[0].rsplit("#", 1)[-1].strip() if captions else ""
    shown = f"the field shows {field.input_value()!r}, the image #{index_text}"
    assert index_text.isdigit() and 0 <= int(index_text) <= 9999, shown
    assert page.locator('[data-testid="stException"]').count() == 0, shown
    assert server.healthy()


FORGED = [-1, 10000, 10**12, -(10**12)]


@pytest.fixture(scope="module")
def forged(model_store) -> dict:
    """The Predict page in Streamlit's AppTest, on the main store, with each forged test index set the way
    a hand-made websocket message would (``reliability.forged``, in a process of its own)."""
    completed = subprocess.run(
        [sys.executable, "-m", "reliability.forged", *map(str, FORGED)],
        cwd=PROJECT_ROOT,
        env=suite_environment(model_store),
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, f"exit {completed.returncode}: {completed.stderr[-2000:]}"
    seen = json.loads(lines[-1])
    assert seen["field"], f"no test-index field after {seen['waited']:.0f} s; {seen['exceptions']}"
    return seen["values"]


@pytest.mark.parametrize("value", FORGED)
def test_a_forged_test_index_is_bounded(value, forged):
    shown, exceptions = forged[str(value)]
    assert isinstance(shown, int) and 0 <= shown <= 9999, shown
    assert not exceptions, exceptions


@pytest.mark.parametrize(
    ("host", "status"),
    [("127.0.0.1", 101), ("localhost", 101), ("rebound.example", 403), ("evil.test", 403)],
    ids=["127.0.0.1", "localhost", "a-foreign-name", "a-foreign-name-with-the-port"],
)
def test_only_this_machines_own_host_names_get_a_session(host, status, server):
    """A page elsewhere whose name resolves to this machine (DNS rebinding) gets no session: the
    server takes WebSocket handshakes only under this machine's own names."""
    port = server.url.rsplit(":", 1)[1]
    name = host if host == "rebound.example" else f"{host}:{port}"
    assert websocket_handshake(server.url, name) == status
