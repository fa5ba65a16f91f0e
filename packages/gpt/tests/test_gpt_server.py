"""`gpt serve` as its users meet it: the real command on 127.0.0.1 and a free port, driven by the
official `openai` client, by raw HTTP for what a client library would never send, and by
headless Chromium for the page.

One module-wide tiny chat run (a base run, then 20 steps of SFT) and one server keep this
quick; the server pauses 20 ms after each decoding step so that a reply lasts long enough to
be stopped mid-way.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from gpt.chat.data import make_chat_data
from gpt.chat.format import END, Message, render
from gpt.generate import generate
from shared.commands import run_command

openai = pytest.importorskip("openai")

TEXT = ("To be, or not to be, that is the question.\ncastle meadow silver forest\n") * 30
KEY = "test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, train_tiny):
    """(base URL, RUNS_DIR) of a running `gpt serve` over a tiny chat run."""
    root = tmp_path_factory.mktemp("serve")
    runs = root / "runs"
    patch = pytest.MonkeyPatch()
    patch.setenv("RUNS_DIR", str(runs))
    text = root / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    try:
        train_tiny(text, "base", block_size=96, max_steps=20)
        data = root / "train.jsonl"
        make_chat_data(["--tasks=reverse", "--n=200", f"--out={data}"], text_source=lambda: TEXT)
        assert run_command("sft", [
            "--stage=gpt", f"--data={data}", "--init=base", "--max_steps=20", "--val_rows=20",
            "--batch_size=8", "--max_length=64", "--time_limit=0", "--precision=fp32",
            "--threads=1", "--run_name=chat"]) == 0  # fmt: skip
    finally:
        patch.undo()
    yield from serving(runs, "chat", f"--api-key={KEY}", "--step_delay=0.02")


@pytest.fixture(scope="module")
def base_server(server):
    """The base run served too (no chat template, so no end token: a reply runs to max_tokens,
    slowly enough to be stopped)."""
    yield from serving(server[1], "base", f"--api-key={KEY}", "--step_delay=0.05")


def serving(runs: Path, run: str, *options: str):
    port = free_port()
    command = [str(Path(sys.executable).parent / "serve"), f"--run={run}", f"--port={port}",
               "--threads=1", *options]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, "RUNS_DIR": str(runs)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if json.load(r)["status"] == "ok":
                        break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    raise RuntimeError("serve did not start:\n" + process.stdout.read()) from None
                time.sleep(0.2)
        yield base, runs
    finally:
        process.terminate()
        process.wait(timeout=20)


def client(base: str, key: str = KEY):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)


def call(base: str, path: str, body: bytes | dict | None = None, key: str | None = KEY):
    """(status, parsed JSON body) of one request."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_openai_client_chats_completes_and_streams(server):
    base, runs = server
    c = client(base)
    assert [m.id for m in c.models.list().data] == ["chat"]
    messages = [{"role": "user", "content": 'Reverse the word "castle".'}]
    reply = c.chat.completions.create(model="chat", messages=messages, temperature=0,
                                      max_tokens=12)  # fmt: skip
    text = reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 12 and reply.usage.prompt_tokens > 10
    # The same greedy reply as decoding the run in this process, alone:
    from gpt.runs import load_run_model

    os.environ["RUNS_DIR"] = str(runs)
    try:
        model, tok, _, _ = load_run_model("chat", torch.device("cpu"))
    finally:
        del os.environ["RUNS_DIR"]
    ids = tok.encode(render([Message("user", messages[0]["content"])], generation_prompt=True))
    out = generate(model, torch.tensor([ids]), 12, temperature=0,
                   eos_token_id=tok.token_to_id(END))[0, len(ids) :].tolist()  # fmt: skip
    end = tok.token_to_id(END)
    assert text == tok.decode(out[: out.index(end)] if end in out else out)

    pieces, usage = [], None
    for chunk in c.chat.completions.create(model="chat", messages=messages, temperature=0,
                                           max_tokens=12, stream=True):  # fmt: skip
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(pieces) == text and usage.completion_tokens == reply.usage.completion_tokens

    done = c.completions.create(model="chat", prompt="To be", max_tokens=6, temperature=0)
    assert done.usage.prompt_tokens == 5 and done.usage.completion_tokens <= 6
    streamed = "".join(
        x.choices[0].text
        for x in c.completions.create(
            model="chat", prompt="To be", max_tokens=6, temperature=0, stream=True
        )
        if x.choices
    )
    assert streamed == done.choices[0].text


def test_n_choices_and_a_seed_repeat_the_same_samples(server):
    c = client(server[0])
    ask = dict(model="chat", prompt="To be", max_tokens=8, temperature=1.0, seed=3, n=2)
    first, again = c.completions.create(**ask), c.completions.create(**ask)
    assert [x.text for x in first.choices] == [x.text for x in again.choices]
    assert [x.index for x in first.choices] == [0, 1]


def test_the_api_key_is_required(server):
    base, _ = server
    with pytest.raises(openai.AuthenticationError):
        client(base, key="wrong").models.list()
    status, body = call(base, "/v1/models", key=None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    assert call(base, "/health", key=None)[0] == 200  # health and the page stay open


BAD = [  # (body, status, the field the error names)
    (b"{not json", 400, None),
    ({"model": "chat", "prompt": "hi", "max_tokens": "many"}, 400, "max_tokens"),
    ({"model": "chat", "prompt": "hi", "max_tokens": 500}, 400, "max_tokens"),
    ({"model": "chat", "prompt": "hi", "temperature": -0.5}, 400, "temperature"),
    ({"model": "chat", "prompt": "hi", "top_p": 0}, 400, "top_p"),
    ({"model": "chat", "prompt": "hi", "top_p": 1.5}, 400, "top_p"),
    ({"model": "gpt-4", "prompt": "hi"}, 404, "model"),
    ({"model": "chat", "prompt": "t" * 200}, 400, "prompt"),
    ({"model": "chat", "prompt": "hi", "temprature": 0.5}, 400, "temprature"),
    ({"model": "chat", "messages": [{"role": "wizard", "content": "hi"}]}, 400,
     "messages.0.role"),
]  # fmt: skip


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(server):
    base, _ = server
    for body, status, param in BAD:
        path = "/v1/chat/completions" if isinstance(body, dict) and "messages" in body else (
            "/v1/completions")  # fmt: skip
        got, answer = call(base, path, body)
        assert got == status, (body, answer)
        error = answer["error"]
        assert error["param"] == param and error["message"] and error["type"], (body, error)
        good = call(base, "/v1/completions", {"model": "chat", "prompt": "To", "max_tokens": 2})
        assert good[0] == 200


def test_concurrent_clients_share_decoding_steps(server):
    base, _ = server

    def health() -> dict:
        return call(base, "/health")[1]

    before = health()["decode_steps"]
    results: list[str] = []

    def one(i: int) -> None:
        pieces = [x.choices[0].text for x in client(base).completions.create(
            model="chat", prompt="To be", max_tokens=20, temperature=1.0, seed=i, stream=True)
            if x.choices]  # fmt: skip
        results.append("".join(pieces))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    steps = health()["decode_steps"] - before
    assert steps < 8 * 20 / 2, steps  # one at a time would take about 8 x 19 steps


def test_a_client_that_leaves_mid_stream_frees_its_slot(server):
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"model": "chat", "prompt": "To be", "max_tokens": 90, "stream": True})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json",
                                                     "Authorization": f"Bearer {KEY}"})  # fmt: skip
    response = conn.getresponse()
    assert response.status == 200
    response.fp.readline()  # the first event: the request is decoding
    assert call(base, "/health")[1]["running"] == 1
    conn.close()  # 90 tokens at 20 ms a step would take about 2 s more
    deadline = time.time() + 1.0
    while call(base, "/health")[1]["running"] and time.time() < deadline:
        time.sleep(0.05)
    assert call(base, "/health")[1]["running"] == 0


def test_metrics_are_prometheus_text(server):
    base, _ = server
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for name in ("gpt_requests_total", "gpt_completion_tokens_total", "gpt_queue_length",
                 "gpt_running_requests", "gpt_time_to_first_token_p99_seconds",
                 "gpt_request_latency_seconds_bucket"):  # fmt: skip
        assert name in text
    assert 'route="/v1/completions",status="400"' in text


def test_the_page_chats_and_stops_in_headless_chromium(base_server, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver_path):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver are missing: .ci/run installs them")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install ...)")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=390,844"):  # a phone-sized screen  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    base, _ = base_server
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 30)
        driver.find_element(By.TAG_NAME, "summary").click()
        driver.find_element(By.ID, "api_key").send_keys(KEY)
        driver.execute_script("loadModel()")
        wait.until(lambda d: d.find_element(By.ID, "model").text.startswith("base"))
        driver.find_element(By.ID, "max_tokens").clear()
        driver.find_element(By.ID, "max_tokens").send_keys("8")
        driver.find_element(By.ID, "input").send_keys("To be, or not\n")
        reply = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".assistant[data-state=done]"))
        assert driver.find_element(By.CSS_SELECTOR, ".user").text == "To be, or not"
        assert reply.get_attribute("data-finish") == "length"
        assert len(reply.get_attribute("textContent")) == 8  # 8 characters: a char model

        # A long reply, stopped as soon as it starts: it ends early, marked, and frees its slot.
        driver.find_element(By.ID, "max_tokens").clear()
        driver.find_element(By.ID, "max_tokens").send_keys("60")
        driver.find_element(By.ID, "input").send_keys("that is the\n")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".assistant")) == 2
                   and d.find_elements(By.CSS_SELECTOR, ".assistant")[1].text)  # fmt: skip
        driver.find_element(By.ID, "stop").click()
        second = wait.until(lambda d: d.find_element(By.CSS_SELECTOR,
                                                     ".assistant[data-state=stopped]"))  # fmt: skip
        assert second.text.endswith("[stopped]")
        driver.save_screenshot(str(tmp_path / "chat.png"))
        assert (tmp_path / "chat.png").stat().st_size > 1000
    finally:
        driver.quit()
    deadline = time.time() + 2
    while call(base, "/health")[1]["running"] and time.time() < deadline:
        time.sleep(0.05)
    assert call(base, "/health")[1]["running"] == 0
