"""AppTest: the next-token page on the real model (bars, rank probe, step-through, streaming, bad input)."""

from __future__ import annotations

import pytest
import torch

from components.model import load_model
from engine import sampling
from tests.conftest import app_page, assert_no_exception, chart_specs

MODEL = "smollm2-135m-instruct"
PROMPT = "The capital of France is"


def open_page(query: dict[str, str] | None = None):
    """The page after one more run: the first run after ``switch_page`` returns an empty value for the bound
    prompt box under AppTest (the displayed value is right; the second run reads it)."""
    at = app_page("next_token", query=query)
    at.run()
    assert_no_exception(at)
    return at


def bars(at) -> dict:
    return next(s["data"][0] for s in chart_specs(at) if s["data"][0]["type"] == "bar")


@pytest.fixture(scope="module")
def lm():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def paris_probs(lm):
    return lm.next_token_probs(lm.encode(PROMPT))


def history(at):
    frames = [d.value for d in at.dataframe]
    return frames[0] if frames else None


def test_bars_cover_the_whole_vocabulary_and_probe_rank(lm, paris_probs):
    at = open_page()
    b = bars(at)
    assert len(b["y"]) == 11 and b["y"][0] == "' Paris'" and b["y"][-1] == "(all other tokens)"
    assert b["x"][0] == pytest.approx(float(paris_probs.max()), abs=1e-5)
    assert sum(b["x"]) == pytest.approx(1.0, abs=1e-4)  # top-10 plus everything else = the full distribution
    lyon = lm.encode(" Lyon")[0]
    rank = int((paris_probs > paris_probs[lyon]).sum()) + 1
    assert any(f"rank **{rank}** of 49,152" in m.value for m in at.markdown)
    assert any("classification" in m.value and "49,152 tokens" in m.value for m in at.markdown)
    entropy = [m for m in at.metric if m.label == "Entropy"][0]
    assert entropy.value == f"{sampling.entropy_bits(paris_probs):.2f} bits"


def test_k_slider_and_probe_do_not_run_the_model(lm, paris_probs):
    at = open_page()
    before = lm.stats.forward_calls
    at.slider(key="nt_k").set_value(25).run()
    b = bars(at)
    assert len(b["y"]) == 26
    assert b["x"][-1] == pytest.approx(1.0 - float(torch.topk(paris_probs.double(), 25).values.sum()), abs=1e-4)
    at.text_input(key="nt_probe").set_value(" London").run()
    assert any("rank **3** of 49,152" in m.value for m in at.markdown)
    highlighted = [c != b["marker"]["color"][0] for c in bars(at)["marker"]["color"][:25]]
    assert highlighted[2]  # ' London' (3rd) is coloured as the asked-about token
    assert lm.stats.forward_calls == before, "a slider or probe change re-ran the model"


def test_multi_token_probe_shows_the_chain_rule(lm):
    at = open_page({"nt_probe": " Schwarzenegger"})
    text = " ".join(m.value for m in at.markdown)
    n = len(lm.encode(" Schwarzenegger"))
    assert f"**{n} tokens**" in text
    assert any(c.value.startswith("Chain rule:") for c in at.caption)


def test_step_greedy_pick_sample_undo_reset(lm, paris_probs):
    at = open_page()
    at.button(key="nt_greedy").click().run()
    assert_no_exception(at)
    h = history(at)
    assert list(h["token"]) == ["' Paris'"] and list(h["rank"]) == [1]
    assert h["probability"][0] == pytest.approx(float(paris_probs.max()), abs=1e-5)
    assert h["entropy (bits)"][0] == pytest.approx(sampling.entropy_bits(paris_probs), abs=1e-4)
    after = lm.next_token_probs(lm.encode(PROMPT) + [int(torch.argmax(paris_probs))])
    assert bars(at)["y"][0] == f"'{lm.token_text(int(torch.argmax(after)))}'"  # the chart moved on one token

    at.pills(key="nt_pick").set_value(at.pills(key="nt_pick").options[2]).run()
    assert_no_exception(at)
    h = history(at)
    assert list(h["chosen by"]) == ["greedy", "picked"] and h["rank"][1] == 3
    assert h["probability"][1] == pytest.approx(float(torch.sort(after, descending=True).values[2]), abs=1e-5)

    at.button(key="nt_sample").click().run()
    h = history(at)
    assert list(h["chosen by"]) == ["greedy", "picked", "sampled"] and h["rank"][2] >= 1

    at.button(key="nt_undo").click().run()
    assert len(history(at)) == 2
    at.button(key="nt_reset").click().run()
    assert history(at) is None
    assert bars(at)["y"][0] == "' Paris'"


@pytest.mark.parametrize(("query", "fast", "label"), [({}, True, "4-bit weights"),
                                                       ({"nt_fast": "false"}, False, "float32 arithmetic")])
def test_streaming_continuation_matches_greedy_and_reports_speed(lm, query, fast, label):
    """Fast 4-bit mode is the default and says so; switching it off streams the float32 path's greedy text."""
    at = open_page({"nt_len": "20", **query})
    assert at.toggle(key="nt_fast").value is fast
    lm.fast_decoder()  # the 4-bit copy is packed in the background after the load: wait until it is ready
    at.button(key="nt_generate").click().run()
    assert_no_exception(at)
    ids = lm.encode(PROMPT)  # the first pick is the page's own distribution's, as on screen
    expected = "".join(s.text for s in lm.generate_stream(ids, 20, temperature=0.0, fast=fast,
                                                           first_logits=lm.next_token_logits(ids)))
    shown = " ".join(h.proto.body for h in at.get("html"))
    assert expected.strip() and expected.replace("\n", "") in shown.replace("\n", "")
    assert any("tokens/s" in c.value and label in c.value for c in at.caption)


def test_bad_input_gives_messages_not_tracebacks(lm):
    at = open_page()
    at.text_area(key="prompt").set_value("  \n ").run()
    assert_no_exception(at)
    assert any("Type a prompt" in i.value for i in at.info)
    at.text_area(key="prompt").set_value("<script>alert(1)</script>\x00 😀").run()
    assert_no_exception(at)
    assert any("Control characters" in c.value for c in at.caption)
    body = " ".join(h.proto.body for h in at.get("html"))
    assert "&lt;script&gt;" in body and "<script>alert" not in body
    at.text_area(key="prompt").set_value(PROMPT).run()
    at.text_input(key="nt_probe").set_value(" [x](http://e.com) **b**").run()
    assert_no_exception(at)
    probe_md = " ".join(m.value for m in at.markdown if "tokens**" in m.value)
    assert r"\[x\]\(http" in probe_md and "[x](http" not in probe_md  # shown as typed, never a link
    long_text = "😀" * 4000  # at the 4,000-character box limit and well past the 1,024-token cap
    assert len(lm.encode(long_text)) > 1024
    before = lm.stats.forward_calls
    at.text_area(key="prompt").set_value(long_text).run()
    assert_no_exception(at)
    assert any("at most 1,024" in w.value for w in at.warning)
    assert lm.stats.forward_calls == before  # refused before the model runs


def test_invalid_url_values_fall_back_to_defaults():
    at = open_page({"nt_k": "lots", "nt_len": "-4"})
    assert at.slider(key="nt_k").value == 10
    assert at.slider(key="nt_len").value == 60
    assert len(bars(at)["y"]) == 11


def test_identical_requests_from_sessions_at_once_are_computed_once(lm):
    """Four sessions ask for the same new prompt at the same moment: one forward pass serves them all, and the page
    then shows that result without another pass.

    The sessions are threads calling the page's cached step (AppTest itself is not thread-safe: it swaps a global
    Runtime in and out around each run, so four AppTests at once failed one run in four)."""
    import threading

    from components import caches

    prompt = "Four students at once ask what the owl of Athens"
    ids = caches.prompt_ids(lm.key, prompt)
    barrier, dists = threading.Barrier(4), []

    def session():
        barrier.wait()
        dists.append(caches.next_distribution(lm.key, ids))

    before = lm.stats.forward_calls
    threads = [threading.Thread(target=session) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lm.stats.forward_calls - before == 1 and len(dists) == 4 and all(d is dists[0] for d in dists)
    at = open_page({"prompt": prompt})
    assert lm.stats.forward_calls - before == 1  # the page's run found it computed
    expected = lm.token_text(int(torch.argmax(lm.next_token_probs(lm.encode(prompt)))))
    assert bars(at)["y"][0] == f"'{expected}'"
