"""A minimal Streamlit websocket client: opens real sessions against a running server, like browsers would.

Used by the benchmark's classroom figure and the reliability tests. It speaks Streamlit's own protobuf protocol
(``BackMsg`` / ``ForwardMsg``) over ``/_stcore/stream`` and records how long each script run took and what it showed
(exceptions, ``st.error`` / ``st.warning`` boxes, markdown, HTML, metrics, code blocks, widgets).

Two ways to use it:

- :func:`run_session` / :func:`run_many` / :func:`run_many_sync`: one page per session, run once (a visitor opening a
  link).
- :class:`LiveSession`: one session that stays connected and acts several times in a row, like a browser tab: open a
  page with a query string, change widgets and rerun, press a button, switch to another page.

How a browser talks to the server (what :class:`LiveSession` imitates): every script run is requested with a
``BackMsg.rerun_script`` (a ``ClientState``) carrying the URL query string, the page (``page_name`` = URL path for a
link, or ``page_script_hash`` of the page on screen for a rerun) and ``widget_states``: one ``WidgetState`` per
changed widget, keyed by the widget's id. A widget's id comes from its ``new_element`` delta (``el.slider.id``…) and
looks like ``$$ID-<hash>-<user key>`` (``-None`` without a key). Values go in the field the widget's serde uses:
sliders ``double_array_value``, select sliders ``string_array_value`` (formatted options), text boxes, radios and
select boxes ``string_value``, checkboxes and toggles ``bool_value``, number inputs ``double_value``, buttons
``trigger_value`` (a press: true for one run only). The server keeps every other widget's last value.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

ALERT_ERROR, ALERT_WARNING, ALERT_INFO = 1, 2, 3  # streamlit.proto.Alert_pb2.Alert.Format

#: Element types that are widgets (their proto has ``id`` and ``label``).
WIDGET_TYPES = frozenset({
    "button", "button_group", "checkbox", "color_picker", "date_input", "multiselect", "number_input", "radio",
    "selectbox", "slider", "text_area", "text_input", "time_input",
})


@dataclass
class SessionResult:
    """What one simulated visitor saw in one action (one page run, waited to its final script run)."""

    page: str
    seconds: float
    ok: bool
    exceptions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # st.error boxes
    texts: list[str] = field(default_factory=list)  # markdown bodies (captions too), for assertions
    action: str = ""  # LiveSession only: e.g. "open next_token", "press nt_generate", "set tmp_t=1.5"
    warnings: list[str] = field(default_factory=list)  # st.warning boxes
    html: list[str] = field(default_factory=list)  # st.html bodies
    metrics: list[str] = field(default_factory=list)  # "label | value | delta"
    code: list[str] = field(default_factory=list)  # st.code texts
    widget_values: list[str] = field(default_factory=list)  # LiveSession only: what the run's text boxes hold
    infos: list[str] = field(default_factory=list)  # st.info boxes (e.g. a training's place in line)
    plain: list[str] = field(default_factory=list)  # st.text bodies (e.g. the RLHF page's two answers)

    def everything(self) -> str:
        """All text the visitor could read in this action, joined (for "did this session see X?" checks)."""
        return "\n".join([*self.texts, *self.html, *self.metrics, *self.code, *self.widget_values, *self.warnings,
                          *self.errors, *self.infos, *self.plain])


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") + "/_stcore/stream"


def _record(el: Any, result: SessionResult) -> None:
    """File one ``new_element`` under the result's lists."""
    which = el.WhichOneof("type")
    if which == "exception":
        result.exceptions.append(f"{el.exception.type}: {el.exception.message}")
    elif which == "alert" and el.alert.format == ALERT_ERROR:
        result.errors.append(el.alert.body)
    elif which == "alert" and el.alert.format == ALERT_WARNING:
        result.warnings.append(el.alert.body)
    elif which == "alert" and el.alert.format == ALERT_INFO:
        result.infos.append(el.alert.body)
    elif which == "markdown":
        result.texts.append(el.markdown.body)
    elif which == "html":
        result.html.append(el.html.body)
    elif which == "metric":
        result.metrics.append(f"{el.metric.label} | {el.metric.body} | {el.metric.delta}")
    elif which == "code":
        result.code.append(el.code.code_text)
    elif which == "text":
        result.plain.append(el.text.body)


async def _read_run(ws, result: SessionResult, timeout: float, on_message=None, whole_run: bool = True) -> None:
    """Read ForwardMsgs until the final ``script_finished`` (skipping runs that ended early for a rerun).

    ``timeout`` bounds the whole run (``whole_run``) or, as :func:`run_session` always did, each message.
    """
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0.1, deadline - time.monotonic()) if whole_run else timeout
        data = await asyncio.wait_for(ws.recv(), timeout=wait)
        fm = ForwardMsg()
        fm.ParseFromString(data)
        kind = fm.WhichOneof("type")
        if on_message is not None:
            on_message(fm, kind)
        if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
            _record(fm.delta.new_element, result)
        elif kind == "page_not_found":
            result.errors.append(f"page not found: {fm.page_not_found.page_name}")
        elif kind == "script_finished":
            if fm.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                continue  # st.rerun() (e.g. the frame taking over a deep link): the next run follows
            result.ok = not result.exceptions and fm.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
            return


async def run_session(base_url: str, page: str = "", query_string: str = "", timeout: float = 120.0) -> SessionResult:
    """Open one session, run ``page`` (its URL path; "" for home) and wait for the script to finish."""
    start = time.perf_counter()
    result = SessionResult(page=page, seconds=0.0, ok=False)
    try:
        async with websockets.connect(_ws_url(base_url), subprotocols=["streamlit"], max_size=None,
                                      open_timeout=timeout) as ws:
            msg = BackMsg()
            msg.rerun_script.query_string = query_string
            msg.rerun_script.page_name = page
            await ws.send(msg.SerializeToString())
            await _read_run(ws, result, timeout, whole_run=False)
    except Exception as exc:  # noqa: BLE001 - a failed session is a measured error, not a crash
        result.exceptions.append(f"{type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - start
    return result


async def run_many(base_url: str, pages: list[str], query_strings: list[str] | None = None,
                   timeout: float = 120.0) -> list[SessionResult]:
    """Run one session per entry of ``pages`` concurrently."""
    qs = query_strings or [""] * len(pages)
    return await asyncio.gather(*(run_session(base_url, p, q, timeout) for p, q in zip(pages, qs, strict=True)))


def run_sync(coro):
    """Run a coroutine to completion in its own event loop on a worker thread, so it also works where a loop is
    already running in this thread (e.g. after Playwright's sync API in the same pytest process)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_many_sync(base_url: str, pages: list[str], query_strings: list[str] | None = None,
                  timeout: float = 120.0) -> list[SessionResult]:
    """Blocking wrapper around :func:`run_many` (see :func:`run_sync`)."""
    return run_sync(run_many(base_url, pages, query_strings, timeout))


# ------------------------------------------------------------------------------------------------ multi-step sessions
@dataclass
class Widget:
    """A widget the last run showed: its id (what the server keys state by), user key, label and element type."""

    id: str
    key: str  # the user key ("None" when the widget has none)
    label: str
    kind: str  # the Element oneof name: "slider", "button", "text_area"…
    proto: Any  # the widget's proto (options, min/max, disabled…)


def user_key_of(widget_id: str) -> str:
    """The user key embedded in a widget id ``$$ID-<hash>-<key>`` ("None" for a widget without a key)."""
    parts = widget_id.split("-", 2)
    return parts[2] if len(parts) == 3 else ""


def widget_state(w: Widget, value: Any) -> WidgetState:
    """A ``WidgetState`` giving ``w`` the value ``value``, in the field its serde reads.

    ``value`` is what the page would get back: a number or a (lo, hi) pair for a slider, an option (shown text) for a
    select slider, radio or select box, text for a text box, a bool for a checkbox/toggle; ignored for a button (a
    press).
    """
    ws = WidgetState(id=w.id)
    if w.kind == "button":
        ws.trigger_value = True
    elif w.kind == "slider" and w.proto.type == w.proto.SELECT_SLIDER:
        ws.string_array_value.data.extend([str(v) for v in (value if isinstance(value, list | tuple) else [value])])
    elif w.kind == "slider":
        ws.double_array_value.data.extend([float(v) for v in (value if isinstance(value, list | tuple) else [value])])
    elif w.kind in ("text_area", "text_input", "radio", "selectbox", "color_picker"):
        ws.string_value = str(value)
    elif w.kind == "checkbox":
        ws.bool_value = bool(value)
    elif w.kind == "number_input":
        ws.double_value = float(value)
    elif w.kind in ("multiselect", "button_group"):
        ws.string_array_value.data.extend([str(v) for v in value])
    else:
        raise ValueError(f"setting a {w.kind} widget is not supported by this client")
    return ws


class LiveSession:
    """One visitor that stays connected and acts several times in a row, like a browser tab.

    Every action waits for its final script run and returns a :class:`SessionResult` (also kept in
    :attr:`results`) with the action's name, its wall time (request sent → final ``script_finished``) and what the
    final run showed (exceptions, errors and warnings of runs that ended early for a rerun are kept too)::

        async with LiveSession(base) as s:
            await s.open("next_token", "prompt=Hello")          # follow a link
            await s.act(set={"nt_len": 20}, press="nt_generate")  # move a slider and press a button in one run
            await s.open("tokenization")                        # switch page, same session

    Widgets are named by their user key (``nt_generate``) or, failing that, their label. A session never raises for
    what the app did: connection problems and timeouts become an entry in the action's ``exceptions``, and after a
    timeout the session is closed (its late messages would be mistaken for the next action's).
    """

    def __init__(self, base_url: str, timeout: float = 120.0):
        self.base_url = base_url
        self.timeout = timeout
        self.results: list[SessionResult] = []
        self.widgets: dict[str, Widget] = {}  # id → widget, from the last final run
        self.page = ""  # URL path of the page on screen
        self.query_string = ""  # the URL's query string, as the server last set it (bound widgets)
        self._page_hash = ""  # page_script_hash of the page on screen (what a browser sends on a rerun)
        self._texts: dict[str, str] = {}  # text box id → the text it holds, kept like the browser keeps it
        self._ws = None

    async def __aenter__(self) -> LiveSession:
        self._ws = await websockets.connect(_ws_url(self.base_url), subprotocols=["streamlit"], max_size=None,
                                            open_timeout=self.timeout)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            try:
                await asyncio.wait_for(self._ws.close(), timeout=5)
            except Exception:  # noqa: BLE001, S110 - closing a dead socket is fine
                pass
            self._ws = None

    def widget(self, name: str) -> Widget:
        """The widget with user key ``name`` (or, if none, label ``name``) from the last run. Raises ``KeyError``."""
        for w in self.widgets.values():
            if w.key == name:
                return w
        for w in self.widgets.values():
            if w.label == name:
                return w
        raise KeyError(f"no widget {name!r} on {self.page or 'home'} (keys: {sorted(w.key for w in self.widgets.values())})")

    async def open(self, page: str = "", query_string: str = "") -> SessionResult:
        """Go to ``page`` (URL path, "" for the default page) with ``query_string``, as following a link would."""
        msg = BackMsg()
        msg.rerun_script.page_name = page
        msg.rerun_script.query_string = query_string
        self.page, self.query_string = page, query_string  # the URL bar, until the server changes it
        return await self._run(msg, f"open {page or 'home'}" + (f"?{query_string}" if query_string else ""))

    async def act(self, set: dict[str, Any] | None = None, press: str | None = None) -> SessionResult:  # noqa: A002
        """Change widgets (``{key or label: value}``) and/or press a button, then rerun the page on screen.

        A widget missing from the last run is a failed action (recorded in ``exceptions``), not a raised error.
        """
        changes = dict(set or {})
        name = ", ".join([f"set {k}={v!r}" for k, v in changes.items()] + ([f"press {press}"] if press else []))
        msg = BackMsg()
        msg.rerun_script.query_string = self.query_string
        msg.rerun_script.page_script_hash = self._page_hash
        msg.rerun_script.page_name = "" if self._page_hash else self.page
        try:
            states = [widget_state(self.widget(k), v) for k, v in changes.items()]
            if press is not None:
                states.append(widget_state(self.widget(press), True))
        except (KeyError, ValueError) as exc:
            result = SessionResult(page=self.page, seconds=0.0, ok=False, action=name, exceptions=[f"client: {exc}"])
            self.results.append(result)
            return result
        msg.rerun_script.widget_states.widgets.extend(states)
        for state in states:  # the browser shows what was typed
            if self.widgets[state.id].kind in ("text_area", "text_input"):
                self._texts[state.id] = state.string_value
        return await self._run(msg, name)

    async def press(self, button: str) -> SessionResult:
        """Press a button (user key or label)."""
        return await self.act(press=button)

    async def _run(self, msg: BackMsg, action: str) -> SessionResult:
        result = SessionResult(page=self.page, seconds=0.0, ok=False, action=action)
        widgets: dict[str, Widget] = {}
        texts: dict[str, str] = {}

        def on_message(fm: ForwardMsg, kind: str) -> None:
            nonlocal widgets, texts
            if kind == "new_session":  # a script run starts: only the final run's widgets count
                widgets, texts = {}, {}
                for lst in (result.texts, result.html, result.metrics, result.code, result.widget_values,
                            result.plain):
                    lst.clear()
            elif kind == "navigation" and fm.navigation.page_script_hash:
                self._page_hash = fm.navigation.page_script_hash
            elif kind == "page_info_changed":
                self.query_string = fm.page_info_changed.query_string
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                which = el.WhichOneof("type")
                if which in WIDGET_TYPES:
                    w = getattr(el, which)
                    widgets[w.id] = Widget(w.id, user_key_of(w.id), getattr(w, "label", ""), which, w)
                if which in ("text_area", "text_input"):
                    # Like the browser: a value the script set (``set_value``) replaces the text; otherwise a box
                    # already on screen keeps its text and a new box starts at its default.
                    w = getattr(el, which)
                    texts[w.id] = w.value if w.set_value else self._texts.get(w.id, w.default)
                    result.widget_values.append(texts[w.id])

        start = time.perf_counter()
        try:
            if self._ws is None:
                raise RuntimeError("session is not connected (use `async with LiveSession(...)`)")
            await asyncio.wait_for(self._ws.send(msg.SerializeToString()), timeout=self.timeout)
            await _read_run(self._ws, result, self.timeout, on_message)
            self.widgets, self._texts = widgets, texts  # boxes that left the page forget their text
        except Exception as exc:  # noqa: BLE001 - a failed action is a measured error, not a crash
            result.exceptions.append(f"{type(exc).__name__}: {exc}")
            result.ok = False
            await self.close()  # a half-read run would leak into the next action: this session is over
        result.seconds = time.perf_counter() - start
        self.results.append(result)
        return result
