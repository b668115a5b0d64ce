"""AppTest: the RLHF page. Voting adds to the server's shared set once, the reward model beats chance on held-out
pairs, a DPO run grows the margin with KL 0 before and > 0 after, and the shared model never changes."""

from __future__ import annotations

import pytest

from components import caches
from components.state import RL_RUN, RL_VOTES
from engine import preference as pref
from engine.registry import ENCODER_DEFAULT_KEY
from engine.training import weights_fingerprint
from tests.conftest import app_page, assert_no_exception, chart_specs, metric_value

KEY = "smollm2-135m-instruct"
ENC = ENCODER_DEFAULT_KEY


@pytest.fixture(scope="module")
def page():
    return app_page("rlhf", query={"rl_pairs": "4", "rl_steps": "5", "rl_n": "3"}, timeout=900)


def _metric_int(at, label: str) -> int:
    return int(metric_value(at, label).replace(",", ""))


def test_two_sampled_answers_and_a_vote_counted_once(page):
    assert_no_exception(page)
    lm = caches.load_model(KEY)
    store = caches.preference_store(KEY)
    a, b = pref.rating_pair(lm, pref.builtin_set().rating_prompts[0], 0)
    texts = [t.value for t in page.text]
    assert a in texts and b in texts  # the two answers on screen are the model's seeded samples
    before = store.counts()["total"]
    assert _metric_int(page, "Votes on this server") == before

    page.button(key="rl_vote_a").click().run()
    assert_no_exception(page)
    assert store.counts()["total"] == before + 1
    assert page.session_state[RL_VOTES] == 1
    assert _metric_int(page, "Votes on this server") == before + 1
    assert store.votes()[-1] == pref.Vote(pref.builtin_set().rating_prompts[0], a, b, "A")
    # the next pair is on screen (seed 1), and a plain rerun counts nothing more
    a1, b1 = pref.rating_pair(lm, pref.builtin_set().rating_prompts[0], 1)
    assert a1 in [t.value for t in page.text]
    page.run()
    assert store.counts()["total"] == before + 1

    page.button(key="rl_vote_skip").click().run()  # a skip records nothing
    assert store.counts()["total"] == before + 1 and page.session_state[RL_VOTES] == 1


def test_reward_model_section_shows_held_out_accuracy_above_chance(page):
    report = caches.reward_report(ENC, pref.pair_rows(pref.builtin_set().train), ())
    shown = metric_value(page, "Accuracy on held-out pairs")
    assert shown == f"{report.test_accuracy:.0%}" and report.test_accuracy > 0.5
    spec = next(s for s in chart_specs(page) if any(d.get("name") == "chosen answer" for d in s["data"]))
    chosen = next(d for d in spec["data"] if d["name"] == "chosen answer")
    assert chosen["x"] == pytest.approx([r[3] for r in report.test_rows])
    gaming = caches.reward_gaming(ENC, pref.pair_rows(pref.builtin_set().train), ())
    raised = sum(1 for g in gaming if g.variant_reward > g.reward)
    assert any(f"**{raised} of {len(gaming)}**" in m.value for m in page.markdown)


def test_best_of_n_ranks_by_reward(page):
    assert not any("reward model's score" in str(a.get("text")) for s in chart_specs(page)
                   for a in s["layout"].get("annotations", []))  # nothing sampled before the learner asks
    page.button(key="rl_bon_go").click().run()
    assert_no_exception(page)
    spec = next(s for s in chart_specs(page) if any("reward model's score" in str(a.get("text"))
                                                      for a in s["layout"].get("annotations", [])))
    rewards = spec["data"][0]["x"]
    assert len(rewards) == 3 and rewards == sorted(rewards, reverse=True)


def test_dpo_run_grows_the_margin_with_kl_zero_before_and_positive_after(page):
    lm = caches.load_model(KEY)
    fingerprint = weights_fingerprint(lm)
    page.button(key="rl_run_dpo").click().run()
    assert_no_exception(page)
    run = page.session_state[RL_RUN][1]
    assert run.steps == 5 and len(run.pairs) == 4
    assert run.wait(600), "DPO did not finish"
    assert run.status == "done", run.error
    page.run()
    assert_no_exception(page)
    first, last = run.history[0], run.history[-1]
    assert first.kl == 0.0 and last.kl > 0
    assert last.margin > first.margin
    spec = next(s for s in chart_specs(page) if any(d.get("name") == "KL" for d in s["data"]))
    kl = next(d for d in spec["data"] if d["name"] == "KL")["y"]
    margin = next(d for d in spec["data"] if d["name"] == "margin")["y"]
    assert kl[0] == 0 and kl[-1] > 0 and margin[-1] > margin[0]
    assert metric_value(page, "KL from the reference") == f"{last.kl:.4f}"
    assert len(run.after_answers) == 3
    table = next(d for d in page.dataframe if "after DPO" in d.value.columns).value
    assert list(table["after DPO"]) == run.after_answers
    assert list(table["original model"]) == [caches.original_answer(KEY, p) for p in run.prompts]
    assert weights_fingerprint(lm) == fingerprint  # the shared model never changed

    page.button(key="rl_reset_dpo").click().run()
    assert_no_exception(page)
    assert RL_RUN not in page.session_state


def test_teacher_reset_clears_the_shared_set(page):
    store = caches.preference_store(KEY)
    store.add("test-key", "p", "a", "b", "B")
    page.run()
    assert _metric_int(page, "Votes on this server") == store.counts()["total"] > 0
    page.button(key="rl_reset_votes").click().run()
    assert_no_exception(page)
    assert store.counts()["total"] == 0
    assert _metric_int(page, "Votes on this server") == 0


def test_the_lms_own_likelihoods_come_when_asked_and_match_the_engine(real_lm):
    """The held-out pairs' likelihoods (24 answers through the language model, ~2 s) wait for their switch; then the
    table's columns and the sentence's count are the engine's numbers."""
    at = app_page("rlhf", query={"rl_pairs_open": "true"}, timeout=900)  # the folded table of pairs, opened
    assert_no_exception(at)
    rewards_only = next(d.value for d in at.dataframe if "r(chosen)" in d.value)
    assert "log p(chosen) by the LM" not in rewards_only
    assert not any("own likelihood" in m.value for m in at.markdown)
    at.toggle(key="rl_likelihood").set_value(True).run(timeout=900)
    assert_no_exception(at)
    held_out = pref.builtin_set().held_out
    expected = pref.pair_likelihoods(real_lm, held_out)
    table = next(d.value for d in at.dataframe if "r(chosen)" in d.value)
    assert table["log p(chosen) by the LM"].tolist() == pytest.approx([round(c, 1) for c, _ in expected], abs=0.11)
    likelier = sum(1 for c, r in expected if c > r)
    assert any(f"prefers the chosen answer on **{likelier}**" in m.value for m in at.markdown)
