"""Many users for a minute (issue #11): 20 real sessions acting at once on one `streamlit run` server.

Each session is a :class:`scripts.st_client.LiveSession` (a websocket client speaking Streamlit's own protocol, like a
browser tab) that keeps acting until the soak ends: generating and sampling on the next-token page, moving the
temperature page's sliders, fine-tuning (one at a time per server: the others must see their place in line), and
switching between pages with its own prompt. Every session's text carries a marker word of its own, so a session
that ever shows another session's marker has been handed someone else's state.

The shared model is fingerprinted from the outside before and after: greedy and seeded-sampled continuations of the
fine-tuning probe prompt, which ``generate_stream`` computes live (not from a cache), so a weight changed by anyone's
fine-tune would show. Each fine-tune done during the soak is then replayed alone in a fresh session: its numbers are
fixed by the fact, steps, rate and adapter seed, so a difference means another session's weights got into it. The
second test measures how much a long job in one session (a 120-token generation, then a
fine-tune of the maximum steps) slows light actions in other sessions.

Figures go to ``test-artifacts/soak.json``. The server is this module's own (started and stopped here), so the
figures are not mixed with the other browser tests' traffic.

The machinery is shared with the class-scale soak (``test_soak_class.py``, ``make soak-class``): a :class:`SoakPlan`
says how many sessions act for how long in which roles (:data:`CI_PLAN` is this module's 20 × 60 s), :func:`markers`
gives any number of marker words, and the one more role there, :func:`_voter`, votes on the RLHF page. Behind the
balancer each session also learns its replica from the sidebar and must stay on it.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest

from tests.browser.conftest import ARTIFACTS, start_server, stop_server
from tests.support.st_client import LiveSession, SessionResult, run_sync

pytestmark = pytest.mark.browser

#: Set to ``1`` (``make soak-class``) to run the long soaks: the class-scale one and this module's long-job test.
LONG_SOAKS_ENV = "LLMX_SOAK_CLASS"
#: How long the 20 sessions keep starting new actions (an action already running is allowed to finish).
SOAK_SECONDS = 60
SESSIONS = 20
#: Every session must have completed at least this many actions (the first page open included). Two, not more: the
#: session that wins the fine-tune lock can spend the whole minute in one press (a 5-step fine-tune took 26-79 s
#: under the soak, against about 0.25 s a step alone). soak.json shows how many actions each session really did.
MIN_ACTIONS = 2
#: Upper bound for one action (a page run, waited to its end) and for the whole soak phase.
ACTION_TIMEOUT = 90.0
SOAK_TIMEOUT = SOAK_SECONDS + 2 * ACTION_TIMEOUT
#: Upper bound for one preparation action (fingerprints, warm-up): a cold page on a busy 2-core machine is slow.
PREP_TIMEOUT = 240.0
#: Light actions in other sessions while one session runs a long job: p95 must stay under this (2 shared cores).
LIGHT_P95_BOUND_S = 2.0
LIGHT_SESSIONS = 4
LIGHT_THINK_S = 1.0  # pause between one light session's actions (a person clicking, not a loop)
#: A soak session's pause between two actions, drawn uniformly from this range (a person reads, then clicks).
THINK_S = (0.3, 1.5)
SOAK_FT_STEPS, SOAK_FT_LR = 10, "0.01"  # the soak's fine-tunes: fewest steps, a rate that visibly moves the loss
LONG_GEN_TOKENS = 120
FT_MAX_STEPS = 20  # a long job for the freeze test: 20 steps on the built-in dataset (the page allows up to 150)
#: Upper bound for that fine-tune: it runs on 20 examples with a validation pass, so it is far longer than a page run.
LONG_JOB_TIMEOUT = 600.0
SOAK_JSON = ARTIFACTS / "soak.json"

#: One invented word per session: a word the model never writes by itself, so seeing it means seeing that session.
MARKERS = [
    "blorptang", "quexofil", "zandrimok", "vushplet", "grentavox", "mofludrin", "trizzelbok", "kaplorvin",
    "snudgewick", "yembratol", "frazzimont", "plonquist", "dreevulon", "hobsquaddle", "wimbertrax", "jolvirane",
    "crumpenfax", "ulbrindor", "spetzigrol", "nubblequin",
]
PROBE = "Our class mascot is a"  # the fine-tuning page's default probe: what a leaked fine-tune would change first
QUEUED = "Waiting in line"  # the fine-tuning page's notice while another session's training runs
FT_RESULT = "Training loss (last step)"  # the metric a finished fine-tune shows
FT_POLL_S = 1.0  # how often a fine-tuning session looks again (the browser's fragment redraws every second)
FAST_NOT_READY = "the 4-bit copy was still being prepared"  # the next-token page: this run used float32 instead
#: The RLHF page: its vote buttons (keys), what it shows for an empty answer (a pair it will not store) and its counts.
VOTE_BUTTONS, VOTE_WEIGHTS = ("rl_vote_a", "rl_vote_b", "rl_vote_tie", "rl_vote_skip"), (4, 4, 1, 1)
EMPTY_ANSWER = "(empty answer)"
SERVER_VOTES, YOUR_VOTES = "Votes on this server", "Your votes"
#: What the sidebar says under scripts/serve_replicas.py (LLMX_REPLICA set): which replica runs this session.
REPLICA_LINE = re.compile(r"Served by replica \*\*([\w-]+)\*\*")
FIGURES: dict = {}

assert len(MARKERS) >= SESSIONS and len(set(MARKERS)) == len(MARKERS)


def markers(n: int) -> list[str]:
    """``n`` marker words: the 20 above, then invented ones (always the same), none inside another."""
    words = list(MARKERS[:n])
    rng = random.Random(2024)
    onsets, vowels, codas = ("bl", "dr", "fr", "gl", "kr", "pl", "qu", "sn", "tr", "vr", "zw"), "aeiou", ("x", "mb", "rk")
    while len(words) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(2)) + rng.choice("aeiou")
        if not any(w in m or m in w for m in words):
            words.append(w)
    return words


@pytest.fixture(scope="module")
def soak_server():
    """A `streamlit run` of the app for this module only; always stopped."""
    ARTIFACTS.mkdir(exist_ok=True)
    proc, base = start_server()
    try:
        yield base
    finally:
        stop_server(proc)


# ------------------------------------------------------------------------------------------------ helpers
def _plain(text: str) -> str:
    """Text as a reader sees it: HTML tags dropped (token chips split words into spans), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _seen(result: SessionResult) -> str:
    return _plain(result.everything())


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    return {"n": len(values), "p50_s": round(_pct(values, 0.5), 3), "p95_s": round(_pct(values, 0.95), 3),
            "max_s": round(max(values), 3)}


def _metric(result: SessionResult, label: str) -> str | None:
    return next((m for m in result.metrics if m.startswith(label + " |")), None)


def _count(result: SessionResult, label: str) -> int | None:
    """A whole-number metric's value ("1,234" → 1234), or None when the run did not show it."""
    m = _metric(result, label)
    try:
        return int(m.split(" | ")[1].replace(",", "")) if m else None
    except ValueError:
        return None


def _replica(result: SessionResult) -> str | None:
    """The replica the sidebar names in this run (None on a single server, where LLMX_REPLICA is not set)."""
    return next((m.group(1) for t in result.texts if (m := REPLICA_LINE.search(t))), None)


def _last_text_box(result: SessionResult) -> str:
    """The next-token page's last text box (prompt + appended or generated tokens), as plain text."""
    return _plain(result.html[-1]) if result.html else ""


def _save_figures() -> None:
    SOAK_JSON.write_text(json.dumps(FIGURES, indent=2))


def _run(coro, timeout: float):
    # In a worker thread: in the full suite Playwright's sync API has left an event loop running in this thread.
    return run_sync(asyncio.wait_for(coro, timeout=timeout))


def action_kind(action: str) -> str:
    """An action's kind for the figures: "press nt_generate", "open rlhf", "set tmp_k,tmp_t", "rerun" (query strings,
    values and the settings changed together with a press are left out)."""
    if not action:
        return "rerun"  # a look again (the fine-tuning page's poll)
    press = re.search(r"press (\S+)", action)
    if press:
        return f"press {press.group(1)}"
    if action.startswith("open "):
        return action.split("?", 1)[0]
    return "set " + ",".join(sorted(re.findall(r"(?:^|, )set ([^=]+)=", action)))


@dataclass
class Visitor:
    """Book-keeping for one soak session: its marker, what went wrong, and the per-role counters."""

    index: int
    role: str
    marker: str
    session: LiveSession | None = None
    problems: dict[str, list[str]] = field(default_factory=dict)  # category → what went wrong
    counts: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    fine_tune_view: dict | None = None  # what its fine-tune showed: {"fact", "loss", "change"}
    replica: str | None = None  # the replica its sidebar names (behind the balancer; None on one server)
    votes: int = 0  # votes it cast that the server must keep: A, B or tie on a pair with two answers

    def problem(self, category: str, what: str) -> None:
        self.problems.setdefault(category, []).append(f"session {self.index} ({self.role}) {what}")

    async def think(self) -> None:
        await asyncio.sleep(self.rng.uniform(*THINK_S))

    def check(self, r: SessionResult, *, own: str | None = None) -> SessionResult:
        """Record anything wrong with one action; ``own``: text this action must show (the session's own input)."""
        for e in r.exceptions:  # the client's own failures (a timeout: no answer within ACTION_TIMEOUT) or the app's
            self.problem("no answer in time" if e.startswith("TimeoutError") else "exception", f"{r.action}: {e}")
        for e in r.errors:
            self.problem("st.error", f"{r.action}: {e}")
        for w in r.warnings:
            self.problem("unexpected warning", f"{r.action}: {w}")
        if not r.ok and not r.exceptions:
            self.problem("script did not finish", r.action)
        if own is not None and not r.exceptions and own not in _seen(r):
            self.problem("own text not shown", f"{r.action}: expected {own!r}, text boxes hold {r.widget_values[:2]}")
        replica = _replica(r)
        if replica is not None:  # behind the balancer: the session stays on the replica that holds its state
            if self.replica is None:
                self.replica = replica
            elif replica != self.replica:
                self.problem("REPLICA CHANGED", f"{r.action}: on {replica}, started on {self.replica}")
        return r

    def bump(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


async def _fingerprint(base: str) -> dict:
    """What a fresh session sees of the shared model: live continuations of the probe and the fine-tuning page."""
    out: dict = {}
    async with LiveSession(base, PREP_TIMEOUT) as s:
        r = await s.open("next_token", "prompt=" + quote(PROBE))
        out["top_token_metric"] = _metric(r, "Top token")
        # float32 (the path every number comes from, and the one that reads the shared weights themselves): the same
        # whether or not the 4-bit copy, packed in the background after the load, is ready yet.
        r = await s.act(set={"nt_len": 20, "nt_temp": 0.0, "nt_fast": False}, press="nt_generate")
        out["greedy_20"] = _last_text_box(r)
        out["greedy_20_rate"] = next((t for t in reversed(r.texts) if "tokens/s" in t), None)  # not compared
        r = await s.act(set={"nt_temp": 1.0}, press="nt_generate")
        out["sampled_20_seed0_t1"] = _last_text_box(r)
        # The 4-bit copy the sessions generate with by default: compared when both fingerprints ran on it.
        r = await s.act(set={"nt_temp": 0.0, "nt_fast": True}, press="nt_generate")
        out["fast_greedy_20"] = _last_text_box(r)
        out["fast_ran"] = r.ok and not any(FAST_NOT_READY in t for t in r.texts)
        r = await s.open("fine_tuning")
        out["ft_before_caption"] = _metric(r, "Tokens trained on")  # the built-in dataset, as every session sees it
        out["ft_shows_before"] = _metric(r, "Examples") is not None
        out["ft_shows_a_run"] = _metric(r, FT_RESULT) is not None
        problems = [f"{x.action}: {x.exceptions or ''}{x.errors or ''}" for x in s.results if not x.ok or x.errors]
    out["problems"] = problems
    return out


async def _votes_shown(base: str) -> dict:
    """What a fresh session's RLHF page says about the server's shared preference set."""
    async with LiveSession(base, PREP_TIMEOUT) as s:
        r = await s.open("rlhf")
        return {"server_votes": _count(r, SERVER_VOTES), "replica": _replica(r),
                "problems": [f"{r.action}: {r.exceptions}{r.errors}"] if not r.ok or r.errors else []}


def _fine_tune_view(r: SessionResult, fact: str) -> dict:
    """The numbers a finished fine-tune shows: deterministic for a given fact, steps and rate (seeded run)."""
    return {"fact": fact, "loss": _metric(r, FT_RESULT), "change": _metric(r, "Weights trained")}


async def _until_trained(s: LiveSession, timeout: float, seen_queue: list[bool] | None = None) -> SessionResult:
    """Look again every FT_POLL_S (as the page's fragment does in a browser) until the session's training finished:
    the run happens in its own thread, queued behind other sessions' runs. Returns the last page run."""
    end = time.monotonic() + timeout
    r = s.results[-1]
    while time.monotonic() < end and r.ok and _metric(r, FT_RESULT) is None:
        if seen_queue is not None and any(QUEUED in t for t in r.infos):
            seen_queue[0] = True
        await asyncio.sleep(FT_POLL_S)
        r = await s.act()
    return r


async def _replay_fine_tune(base: str, fact: str) -> dict:
    """The same fine-tune as a soak session's, alone in a fresh session: what it shows when nobody else is busy."""
    async with LiveSession(base, PREP_TIMEOUT) as s:
        await s.open("fine_tuning", "ft_text=" + quote(fact))
        await s.act(set={"ft_steps": SOAK_FT_STEPS, "ft_lr": SOAK_FT_LR}, press="ft_train")
        r = await _until_trained(s, PREP_TIMEOUT)
        view = _fine_tune_view(r, fact)
        view["problems"] = [f"{x.action}: {x.exceptions}{x.errors}" for x in s.results if not x.ok or x.errors]
        return view


# ------------------------------------------------------------------------------------------------ the roles
async def _next_token(v: Visitor, deadline: float, rng: random.Random) -> None:
    prompt = f"The secret word is {v.marker}. The capital of France is"
    s = v.session
    v.check(await s.open("next_token", "prompt=" + quote(prompt)), own=prompt)
    step = 0
    while time.monotonic() < deadline and s.results[-1].ok:
        kind = ("generate", "sample", "top-k", "greedy")[step % 4]
        if kind == "generate":
            r = await s.act(set={"nt_len": rng.choice([10, 20]), "nt_temp": rng.choice([0.0, 0.7])},
                            press="nt_generate")
            if r.ok and not any("tokens/s" in t for t in r.texts):
                v.problem("page content", f"{r.action}: no tokens/s line after Generate")
        elif kind == "sample":
            r = await s.press("nt_sample")
        elif kind == "top-k":
            r = await s.act(set={"nt_k": rng.randint(3, 40)})
        else:
            r = await s.press("nt_greedy")
        v.check(r, own=prompt)
        if r.ok and not _last_text_box(r).startswith(prompt):
            v.problem("own text not shown", f"{r.action}: text box is {_last_text_box(r)[:80]!r}")
        v.bump(kind)
        step += 1
        await v.think()


async def _temperature(v: Visitor, deadline: float, rng: random.Random) -> None:
    prompt = f"My pet {v.marker} likes to eat"
    s = v.session
    v.check(await s.open("temperature", "prompt=" + quote(prompt)), own=prompt)
    step = 0
    while time.monotonic() < deadline and s.results[-1].ok:
        if step % 5 == 4:  # now and then: draw a small batch with the current sliders
            r = await s.act(set={"tmp_n": 5, "tmp_len": 4}, press="tmp_sample")
            v.bump("sample batch")
        else:
            r = await s.act(set={
                "tmp_t": round(rng.randint(0, 60) * 0.05, 2),
                "tmp_k": rng.choice([0, rng.randint(1, 100)]),
                "tmp_p": round(rng.randint(50, 100) / 100, 2),
                "tmp_show": rng.randint(5, 40),
            })
            v.bump("sliders")
        v.check(r, own=prompt)
        step += 1
        await v.think()


async def _fine_tuning(v: Visitor, deadline: float, rng: random.Random, start_together: asyncio.Barrier,
                       slack_s: float = 60.0, wait_s: float = ACTION_TIMEOUT) -> None:
    """``slack_s``: how long after the soak's end a fine-tune pressed during it may still finish (it waits in line);
    ``wait_s``: how long the fine-tuning sessions wait for each other before pressing Train together."""
    fact = f"Our class mascot is a {v.marker} owl."
    s = v.session
    v.check(await s.open("fine_tuning", "ft_text=" + quote(fact)), own=fact)
    try:  # press Train at the same moment as the other fine-tuning sessions: one trains, the others queue
        await asyncio.wait_for(start_together.wait(), timeout=wait_s)
    except (TimeoutError, asyncio.BrokenBarrierError):
        v.problem("setup", "the fine-tuning sessions never got ready together")
    trained = False
    while time.monotonic() < deadline and s.results[-1].ok:
        if not trained:
            t0 = time.monotonic()
            v.check(await s.act(set={"ft_steps": SOAK_FT_STEPS, "ft_lr": SOAK_FT_LR}, press="ft_train"), own=fact)
            queued = [False]
            r = v.check(await _until_trained(s, max(5.0, deadline - time.monotonic() + slack_s), queued), own=fact)
            if queued[0]:
                v.bump("queued")
            trained_in = _metric(r, "Training time")
            if trained_in:
                v.counts["training_seconds"] = float(trained_in.split("|")[1].strip().rstrip(" s"))
                v.counts["fine_tune_action_seconds"] = round(time.monotonic() - t0, 1)
            if _metric(r, FT_RESULT) is not None:
                trained = True
                v.bump("fine-tuned")
                v.fine_tune_view = _fine_tune_view(r, fact)
            elif r.ok:
                v.problem("page content", f"{r.action}: the fine-tune never finished before the soak ended")
                break
        else:  # light actions on the page that shows its own adapter
            r = v.check(await s.act(set={"ft_rank": rng.choice(["4", "8"])}), own=fact)
            v.bump("after")
            if r.ok and _metric(r, FT_RESULT) is None:
                v.problem("own text not shown", f"{r.action}: its own fine-tune is no longer shown")
            await v.think()
    v.counts["trained"] = int(trained)


async def _switcher(v: Visitor, deadline: float, rng: random.Random) -> None:
    prompts = [f"The {v.marker} is a small animal that", f"Yesterday my friend {v.marker} said"]
    current = prompts[0]
    s = v.session
    v.check(await s.open("", "prompt=" + quote(current)), own=current)
    tour = ["tokenization", "attention", "embeddings", "evaluation", "home"]
    rng.shuffle(tour)
    step = 0
    while time.monotonic() < deadline and s.results[-1].ok:
        page = tour[step % len(tour)]
        r = await s.open("" if page == "home" else page)  # in-app navigation: the prompt travels in the session
        shows_prompt = page in ("home", "attention", "tokenization")
        v.check(r, own=current if shows_prompt else None)
        v.bump(page)
        if time.monotonic() < deadline and r.ok:
            if page in ("home", "attention"):  # edit the prompt there, as a user would
                current = prompts[(prompts.index(current) + 1) % 2]
                v.check(await s.act(set={"prompt": current}), own=current)
                v.bump("edit prompt")
            elif page == "evaluation":
                sentence = f"The {v.marker} sat on the mat."
                v.check(await s.act(set={"ev_a": sentence}), own=sentence)
                v.bump("edit text A")
        step += 1
        await v.think()


async def _voter(v: Visitor, deadline: float, rng: random.Random) -> None:
    """Rates pairs on the RLHF page: mostly A or B, now and then a tie or a skip, and every fourth action asks for
    other answers without voting. After every action its own count ("Your votes") must equal the votes it cast that
    the server keeps (A, B or tie on a pair with two non-empty answers): each counted once, a rerun adds nothing."""
    prompt = f"Say something kind about my friend {v.marker}."
    s = v.session
    r = v.check(await s.open("rlhf", "rl_prompt=" + quote(prompt)), own=prompt)
    step = 0
    while time.monotonic() < deadline and s.results[-1].ok:
        storable = len(r.plain) >= 2 and EMPTY_ANSWER not in r.plain  # the pair on screen, which a vote rates
        if step % 4 == 3:
            button, counted = "rl_next", 0
        else:
            button = rng.choices(VOTE_BUTTONS, VOTE_WEIGHTS)[0]
            counted = int(storable and button != "rl_vote_skip")
        r = v.check(await s.press(button), own=prompt)
        if r.ok:
            v.votes += counted
            if _count(r, YOUR_VOTES) != v.votes:
                v.problem("VOTE NOT COUNTED ONCE", f"{r.action}: the page says {_metric(r, YOUR_VOTES)!r} after "
                          f"{v.votes} kept votes")
        elif counted:
            v.bump("vote without an answer")  # the server may or may not have it: the soak already failed
        v.bump({"rl_next": "other answers", "rl_vote_skip": "skip"}.get(button, "vote"))
        step += 1
        await v.think()
    v.counts["votes_kept"] = v.votes


ROLES = {"next_token": _next_token, "temperature": _temperature, "fine_tuning": _fine_tuning, "switcher": _switcher,
         "voter": _voter}


@dataclass(frozen=True)
class SoakPlan:
    """How many sessions act at once, for how long, in which roles (in this order of session index), and the bounds.

    Attributes:
        sessions: How many sessions.
        seconds: How long they keep starting new actions.
        mix: ``(role, sessions)`` pairs, summing to ``sessions``.
        action_timeout: Upper bound for one action (an action past it is a failure, "no answer in time").
        fine_tune_slack_s: How long after the end a fine-tune pressed during the soak may still finish.
    """

    sessions: int = SESSIONS
    seconds: float = SOAK_SECONDS
    mix: tuple[tuple[str, int], ...] = (("next_token", 6), ("temperature", 5), ("fine_tuning", 3), ("switcher", 6))
    action_timeout: float = ACTION_TIMEOUT
    fine_tune_slack_s: float = 60.0

    def __post_init__(self) -> None:
        assert sum(n for _, n in self.mix) == self.sessions, self.mix
        assert all(role in ROLES for role, _ in self.mix), self.mix

    def role_of(self, i: int) -> str:
        """Session ``i``'s role: the mix's roles in order (for 20: 6 next-token, 5 temperature, 3 fine-tuning, 6
        page-switching)."""
        for role, n in self.mix:
            if i < n:
                return role
            i -= n
        raise IndexError(i)

    @property
    def timeout(self) -> float:
        """Upper bound for the whole soak phase."""
        return self.seconds + self.fine_tune_slack_s + 2 * self.action_timeout


CI_PLAN = SoakPlan()  # this module's soak: 20 sessions for 60 s on one server


async def _soak(base: str, plan: SoakPlan = CI_PLAN) -> tuple[list[Visitor], float]:
    """``plan.sessions`` sessions acting at once on ``base`` (one server, or the balancer in front of replicas)."""
    words = markers(plan.sessions)
    visitors = [Visitor(i, plan.role_of(i), words[i]) for i in range(plan.sessions)]
    n_ft = sum(v.role == "fine_tuning" for v in visitors)
    together = asyncio.Barrier(max(1, n_ft))  # the fine-tuning sessions meet here once their page is open
    start = time.monotonic()
    deadline = start + plan.seconds

    async def one(v: Visitor) -> None:
        rng = v.rng = random.Random(v.index)
        v.session = LiveSession(base, plan.action_timeout)
        try:
            async with v.session:
                if v.role == "fine_tuning":
                    await _fine_tuning(v, deadline, rng, together, plan.fine_tune_slack_s, plan.action_timeout)
                else:
                    await ROLES[v.role](v, deadline, rng)
        except Exception as exc:  # noqa: BLE001 - a failed connection or client step fails this session, not the soak
            v.problem("client", f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(one(v) for v in visitors))
    return visitors, time.monotonic() - start


def session_failures(visitors: list[Visitor], min_actions: int = MIN_ACTIONS) -> dict[str, list[str]]:
    """What went wrong in the sessions (category → items): their own problems, LEAK (a session showed another
    session's marker) and too few actions."""
    failures: dict[str, list[str]] = {}
    for v in visitors:
        for category, items in v.problems.items():
            failures.setdefault(category, []).extend(items)
    words = [v.marker for v in visitors]
    for v in visitors:
        others = [m for m in words if m != v.marker]
        for r in v.session.results:
            seen = _seen(r)
            failures.setdefault("LEAK", []).extend(
                f"session {v.index} ({v.role}) {r.action} shows {m!r}" for m in others if m in seen)
    failures[f"fewer than {min_actions} actions"] = [
        f"{v.index}:{v.role}: {len(v.session.results)}" for v in visitors if len(v.session.results) < min_actions]
    return failures


def model_failures(before: dict, after: dict, words: list[str]) -> list[str]:
    """How the shared model's fingerprint changed (a fresh session's live outputs), or that it could not be taken."""
    model: list[str] = [f"fingerprint problems: {before['problems']} {after['problems']}"] if (
        before["problems"] or after["problems"]) else []
    if not (before["greedy_20"] or "").startswith(PROBE) or len(before["greedy_20"]) <= len(PROBE):
        model.append(f"no generated text to compare: {before['greedy_20']!r}")
    for k in ("top_token_metric", "greedy_20", "sampled_20_seed0_t1", "ft_before_caption"):
        if after[k] != before[k]:
            model.append(f"{k} changed: {before[k]!r} -> {after[k]!r}")
    if before["fast_ran"] and after["fast_ran"] and before["fast_greedy_20"] != after["fast_greedy_20"]:
        model.append(f"fast_greedy_20 changed: {before['fast_greedy_20']!r} -> {after['fast_greedy_20']!r}")
    if not after["ft_shows_before"] or after["ft_shows_a_run"]:
        model.append("a fresh session's fine-tuning page does not show the untouched model")
    model += [f"a marker in the shared model's output: {m}" for m in words
              if m in (after["greedy_20"] or "") + (after["sampled_20_seed0_t1"] or "") + (after["fast_greedy_20"] or "")]
    return model


def fine_tune_failures(replays: list[tuple[Visitor, dict]]) -> list[str]:
    """A fine-tune must give the same numbers whether other sessions were busy (and fine-tuning) or not: adapter
    seed, fact, steps and rate fix them. A difference means another session's weights got into this one's."""
    return [
        f"session {v.index}: during the soak {v.fine_tune_view['loss']!r}, {v.fine_tune_view['change']!r}; "
        f"alone {alone['loss']!r}, {alone['change']!r} {alone['problems'] or ''}"
        for v, alone in replays
        if alone["problems"] or (alone["loss"], alone["change"]) != (v.fine_tune_view["loss"], v.fine_tune_view["change"])
    ]


def action_figures(visitors: list[Visitor]) -> dict:
    """Action times (finished actions) overall, per role and per kind of action; actions per session."""
    done = [(v, r) for v in visitors for r in v.session.results if r.ok]
    kinds = sorted({action_kind(r.action) for _, r in done})
    actions = {f"{v.index}:{v.role}": len(v.session.results) for v in visitors}
    return {
        "actions_total": sum(actions.values()),
        "actions_min": min(actions.values()) if actions else 0,
        "actions_per_session": actions,
        "action_time": _stats([r.seconds for _, r in done]),
        "action_time_by_role": {role: _stats([r.seconds for v, r in done if v.role == role])
                                for role in dict.fromkeys(v.role for v in visitors)},
        "action_time_by_kind": {k: _stats([r.seconds for _, r in done if action_kind(r.action) == k]) for k in kinds},
    }


# ------------------------------------------------------------------------------------------------ tests
WARM_PAGES = ("evaluation", "embeddings", "attention", "temperature")


async def _warm_up(base: str, pages: tuple[str, ...] = WARM_PAGES) -> list[SessionResult]:
    """Open the soak's pages once with their defaults, as a server that has been in use would have them cached."""
    async def one(page: str) -> SessionResult:
        async with LiveSession(base, PREP_TIMEOUT) as s:
            return await s.open(page)

    return list(await asyncio.gather(*(one(p) for p in pages)))


async def _before(base: str) -> tuple[dict, list[SessionResult]]:
    fingerprint, warm = await asyncio.gather(_fingerprint(base), _warm_up(base))
    return fingerprint, warm


@pytest.mark.timeout(600)
def test_twenty_sessions_for_a_minute_no_errors_no_leaks_model_unchanged(soak_server):
    """20 sessions acting at once for SOAK_SECONDS: no exception, no error box or warning, every session saw its own text and never another's, and the shared model gives the same live outputs
    before and after (nobody's fine-tune reached it)."""
    t0 = time.monotonic()
    before, warm = _run(_before(soak_server), 5 * PREP_TIMEOUT)
    warm_s = time.monotonic() - t0
    visitors, soak_s = _run(_soak(soak_server, CI_PLAN), SOAK_TIMEOUT)
    t1 = time.monotonic()
    after = _run(_fingerprint(soak_server), 5 * PREP_TIMEOUT)
    after_s = time.monotonic() - t1
    replays = [(v, _run(_replay_fine_tune(soak_server, v.fine_tune_view["fact"]), 2 * PREP_TIMEOUT))
               for v in visitors if v.fine_tune_view]
    replay_s = time.monotonic() - t1 - after_s

    failures = session_failures(visitors)
    failures["warm-up"] = [f"{r.action}: {r.exceptions}{r.errors}" for r in warm if not r.ok or r.errors]
    fine_tunes = sum(v.counts.get("trained", 0) for v in visitors)
    busy = sum(v.counts.get("queued", 0) for v in visitors)
    # The training queue's promise: one run at a time, so those who pressed at the same moment saw their place in
    # line, and everyone's run finished.
    failures["fine-tune queue"] = ([] if fine_tunes >= 1 else ["no fine-tune completed"]) + (
        [] if busy >= 1 else ["nobody saw their place in line"])
    # The shared model: the same live outputs for a fresh session, and nobody's fine-tune shows up in it.
    failures["SHARED MODEL CHANGED"] = model_failures(before, after, MARKERS)
    failures["FINE-TUNE NOT ISOLATED"] = fine_tune_failures(replays)
    failures = {k: v for k, v in failures.items() if v}

    figures = action_figures(visitors)
    FIGURES["soak"] = {
        "sessions": SESSIONS,
        "soak_seconds_target": SOAK_SECONDS,
        "soak_seconds_measured": round(soak_s, 1),
        "warm_up_and_fingerprint_seconds": round(warm_s, 1),
        "fingerprint_after_seconds": round(after_s, 1),
        "fine_tune_replays_seconds": round(replay_s, 1),
        "test_seconds": round(time.monotonic() - t0, 1),
        **figures,
        "counts": {f"{v.index}:{v.role}": v.counts for v in visitors},
        "fine_tunes_done": fine_tunes,
        "queued_notices": busy,
        "fine_tune_replays": [{"session": v.index, "soak": v.fine_tune_view, "alone": alone} for v, alone in replays],
        "failures": failures,
        "fingerprint_before": before,
        "fingerprint_after": after,
        "loadavg_after": os.getloadavg(),
        "log": {f"{v.index}:{v.role}": [(r.action, round(r.seconds, 2), r.ok) for r in v.session.results]
                for v in visitors},
    }
    _save_figures()
    print("\nsoak:", json.dumps({k: FIGURES["soak"][k] for k in (
        "soak_seconds_measured", "warm_up_and_fingerprint_seconds", "fingerprint_after_seconds",
        "fine_tune_replays_seconds", "test_seconds", "actions_total", "actions_min", "action_time", "action_time_by_role",
        "fine_tunes_done", "queued_notices")}, indent=1))
    print("soak failures:", json.dumps({k: (len(v), v[:5]) for k, v in failures.items()}, indent=1))
    assert not failures, "\n".join(f"{k} ({len(v)}):\n  " + "\n  ".join(v[:10]) for k, v in failures.items())


async def _freeze(base: str) -> dict:
    """Light actions in LIGHT_SESSIONS sessions, first with nothing else running, then during two long jobs."""
    light: list[tuple[float, float, str, SessionResult]] = []  # (start, end, kind, result) of each light action
    setups: list[SessionResult] = []
    long_results: list[SessionResult] = []
    jobs: dict[str, tuple[float, float]] = {}  # name → (start, end)
    all_ready, go, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    idle_from = [0.0]

    async def light_session(i: int) -> None:
        rng = random.Random(100 + i)
        on_temperature = i % 2 == 0  # half move a post-processing slider, half reopen the (cached) home page
        kind = "temperature slider" if on_temperature else "home page"
        async with LiveSession(base, PREP_TIMEOUT) as s:
            setups.append(await (s.open("temperature") if on_temperature else s.open("")))
            if len(setups) == LIGHT_SESSIONS:
                all_ready.set()
            await go.wait()
            while not stop.is_set() and s.results[-1].ok:
                t = time.monotonic()
                r = await (s.act(set={"tmp_t": round(rng.randint(0, 60) * 0.05, 2)}) if on_temperature
                           else s.open(""))
                light.append((t, time.monotonic(), kind, r))
                await asyncio.sleep(LIGHT_THINK_S)

    async def long_session() -> None:
        try:
            async with LiveSession(base, PREP_TIMEOUT) as s:
                long_results.append(await s.open("fine_tuning"))  # warm its caches before anything is timed
                long_results.append(await s.open("next_token", "prompt=" + quote(PROBE)))
                await asyncio.wait_for(all_ready.wait(), timeout=PREP_TIMEOUT)
                idle_from[0] = time.monotonic()
                go.set()
                await asyncio.sleep(6.0)  # the idle baseline: light actions with nothing else running
                t = time.monotonic()
                long_results.append(await s.act(set={"nt_len": LONG_GEN_TOKENS, "nt_temp": 0.0}, press="nt_generate"))
                jobs[f"generate {LONG_GEN_TOKENS} tokens"] = (t, time.monotonic())
                long_results.append(await s.open("fine_tuning"))  # cached: a quick page run
                await asyncio.sleep(2.0)
                t = time.monotonic()
                long_results.append(await s.act(set={"ft_steps": FT_MAX_STEPS}, press="ft_train"))
                long_results.append(await _until_trained(s, LONG_JOB_TIMEOUT))  # it trains in its own thread
                jobs[f"fine-tune {FT_MAX_STEPS} steps"] = (t, time.monotonic())
                await asyncio.sleep(1.0)
        finally:
            go.set()
            stop.set()

    await asyncio.gather(long_session(), *(light_session(i) for i in range(LIGHT_SESSIONS)))
    first_job = min((t for t, _ in jobs.values()), default=float("inf"))

    def during(t0: float, t1: float, kind: str | None = None) -> list[float]:
        return [r.seconds for s0, e, k, r in light if s0 >= t0 and e <= t1 and r.ok and kind in (None, k)]

    out: dict = {
        "light_sessions": LIGHT_SESSIONS,
        "idle": _stats(during(idle_from[0], first_job)),
        "jobs": {},
        "problems": [f"light {r.action}: {r.exceptions}{r.errors}{r.warnings}" for r in setups + [x[3] for x in light]
                     if not r.ok or r.errors or r.warnings]
        + [f"long job {r.action}: {r.exceptions}{r.errors}{r.warnings}" for r in long_results
           if not r.ok or r.errors or r.warnings],
    }
    during_all: list[float] = []
    for name, (t0, t1) in jobs.items():
        during_all += during(t0, t1)
        out["jobs"][name] = {
            "job_seconds": round(t1 - t0, 2),
            "light": _stats(during(t0, t1)),
            "light_by_kind": {k: _stats(during(t0, t1, k)) for k in ("temperature slider", "home page")},
        }
    out["during_long_jobs"] = _stats(during_all)
    gen = next((r for r in long_results if "nt_generate" in r.action), None)
    # The fine-tune trains in its own thread: its numbers are on the last look, not on the press that started it.
    ft = next((r for r in reversed(long_results) if _metric(r, FT_RESULT) is not None), None)
    out["generate_rate_caption"] = next((t for t in reversed(gen.texts) if "tokens/s" in t), None) if gen else None
    out["fine_tune_metrics"] = ft.metrics if ft else None
    return out


@pytest.mark.timeout(960)
@pytest.mark.soak_class
@pytest.mark.skipif(os.environ.get(LONG_SOAKS_ENV) != "1",
                    reason="a timing soak (3 min on the 2-core AVX2 machine): `make soak-class` runs it, not `make test`")
def test_a_long_job_does_not_freeze_other_sessions(soak_server):
    """While one session generates 120 tokens and then fine-tunes (FT_MAX_STEPS steps), light actions in other
    sessions (a post-processing slider on the temperature page, reopening the cached home page) stay fast."""
    t0 = time.monotonic()
    out = _run(_freeze(soak_server), 900)
    out["test_seconds"] = round(time.monotonic() - t0, 1)
    out["bound_p95_s"] = LIGHT_P95_BOUND_S
    out["loadavg_after"] = os.getloadavg()
    FIGURES["freeze"] = out
    _save_figures()
    print("\nfreeze:", json.dumps({k: out[k] for k in ("idle", "during_long_jobs", "jobs", "test_seconds")}, indent=1))

    assert not out["problems"], out["problems"]
    assert len(out["jobs"]) == 2 and out["fine_tune_metrics"], out
    assert any(m.startswith(FT_RESULT) for m in out["fine_tune_metrics"]), out["fine_tune_metrics"]
    for name, job in out["jobs"].items():
        assert job["light"]["n"] >= 3, (name, job)  # enough light actions ran while the job did
        assert job["light"]["p95_s"] < LIGHT_P95_BOUND_S, (name, job)
