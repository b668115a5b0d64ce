"""Using an LLM: a chat turn as a chat-completion API request and response, answered by the local model, and what the
server does inside (template → tokens → KV-cached generation loop → detokenize)."""

import json

import pandas as pd
import streamlit as st

from components import caches
from components.display import show_error, token_chips
from components.frame import end_page, ensure_frame, page_links
from components.inputs import cleaned
from components.model import require_lm
from engine import serving
from engine.lm import InputError
from engine.text import md_escape, token_label

DEFAULT_USER = "What is the capital of France?"
SENT = "_api_sent"  # the last request this session sent, and its answer

ensure_frame()
st.title("Using an LLM: APIs & serving")
st.markdown(
    "> *As an ML practitioner, you usually **don't train** an LLM — you **use** one: via APIs (OpenAI, Anthropic, "
    "etc.) or open-source models (LLaMA, Mistral, Gemma, etc.). You can then **fine-tune** or **prompt-engineer** "
    "them for your task.* (the post, section 5)"
)
lm = require_lm()

st.markdown("Two routes, described (nothing on this page calls them):")
hosted, open_route = st.columns(2)
hosted.info(
    "**Hosted API** (OpenAI, Anthropic, …): you send your messages over HTTPS to the provider, which runs the model "
    "on its own servers and sends back the reply. You never see the weights; you pay per token, for the tokens you "
    "send and the tokens it writes.",
    icon=":material/cloud:",
)
open_route.info(
    "**Open model** (LLaMA, Mistral, Gemma, … and SmolLM2, the model on these pages): you download the weights and "
    "run them yourself, on a laptop (llama.cpp, Ollama) or a GPU server (vLLM). Many of these servers accept the same "
    "chat-completion request as the hosted APIs.",
    icon=":material/download:",
)
st.markdown("Either way you then adapt the model without training it from scratch:")
page_links(("fine_tuning", "prompts"))
st.markdown(
    f"**This page is a small server of the second kind.** Your chat turn is turned into a chat-completion request "
    f"and answered by the {md_escape(lm.info.name)} model already loaded in this app. **No network call is made**: "
    "every number below is computed here, on this computer."
)

# ------------------------------------------------------------------------------------------------ the request
st.subheader("1. Your request")
system = cleaned(st.text_area(
    "System prompt (optional)", value="", key="api_system", height=68, bind="query-params",
    help="Instructions the app developer gives the model before the conversation. Leave empty to use the model's "
    "own default.",
), limit=serving.MAX_MESSAGE_CHARS)
user = cleaned(st.text_area("Your chat turn (user message)", value=DEFAULT_USER, key="api_user", height=68,
                            bind="query-params"), limit=serving.MAX_MESSAGE_CHARS)
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="center")
temperature = c1.slider("temperature", 0.0, 1.5, 0.0, step=0.1, key="api_temp", bind="query-params",
                        help="0 = greedy (always the most likely token). Above 0 the reply is sampled, with seed 0.")
max_tokens = c2.slider("max_tokens", 1, 128, 48, key="api_max", bind="query-params",
                       help="The most tokens the reply may have. The server stops there even mid-sentence.")
fast = c3.toggle(
    "Fast 4-bit mode", value=False, key="api_fast", bind="query-params",
    help="Off: the float32 model, the one every probability in this app comes from. On: weights rounded to 4 bits "
    "and bfloat16 arithmetic, as many local servers run (llama.cpp, Ollama): about twice as fast here, but the reply "
    "can differ after a few tokens.",
)
try:
    messages = serving.clean_messages(system, user)
except InputError as err:
    show_error(err)
    end_page()
body = serving.request_body(lm.info.name, messages, temperature, max_tokens)
st.markdown("What a client sends as `POST /v1/chat/completions` (the OpenAI-style format most servers accept):")
st.code(json.dumps(body, indent=2, ensure_ascii=False), language="json", wrap_lines=True)
if any(t in system + user for t in lm.special_tokens()):
    st.warning(
        "Your text contains special-token text such as `<|im_end|>`: the tokenizer turns it into the real control "
        "token, so it can fake the end of a turn. Real servers strip or escape these (one route to prompt injection).",
        icon=":material/gpp_maybe:",
    )

# ------------------------------------------------------------------------------------------------ the response
st.subheader("2. The response")
request = (lm.key, messages, float(temperature), int(max_tokens), bool(fast))
if st.button("Send the request", icon=":material/send:", type="primary", key="api_send"):
    try:
        st.session_state[SENT] = {"request": request, "served": caches.served_chat(*request)}
    except InputError as err:
        show_error(err)
        end_page()
saved = st.session_state.get(SENT)
if not saved or saved["request"] != request:
    st.caption("Press **Send the request** to have the local model answer it (one reply, token by token, on this CPU).")
    end_page()
served = saved["served"]
st.code(json.dumps(serving.response_body(served), indent=2, ensure_ascii=False), language="json", wrap_lines=True)
m = st.columns(4)
m[0].metric("finish_reason", served.finish_reason)
m[1].metric("prompt_tokens", f"{served.prompt_tokens:,}")
m[2].metric("completion_tokens", f"{served.completion_tokens:,}")
m[3].metric("total_tokens", f"{served.total_tokens:,}")
if served.finish_reason == "stop":
    st.markdown(
        f"**finish_reason `stop`**: the model itself ended its turn by choosing the end-of-turn token "
        f"`{served.eos_token}` (counted in `completion_tokens`, dropped from the text)."
    )
else:
    st.markdown(
        f"**finish_reason `length`**: the reply hit `max_tokens` = {served.max_tokens} before the model chose its "
        f"end-of-turn token `{served.eos_token}`, so the server cut it off. Raise `max_tokens` to let it finish."
    )
st.caption(
    "A hosted API bills `prompt_tokens` and `completion_tokens` (usually at different prices): the template's own "
    "tokens count too."
)

# ------------------------------------------------------------------------------------------------ inside
st.subheader("3. What the server does inside")
st.markdown(
    "**Step 1, chat template.** The messages become one string, with special tokens marking who speaks. The model "
    "only ever continues this string:"
)
st.code(served.templated, language=None, wrap_lines=True)
if served.default_system is not None:
    st.caption(f":material/info: No system prompt was sent, so the template inserted its own: "
               f"“{md_escape(served.default_system)}”.")
st.markdown(
    f"**Step 2, tokens.** The tokenizer cuts that string into **{served.prompt_tokens:,} tokens**: exactly the "
    "`prompt_tokens` of the response."
)
token_chips(caches.token_pieces(lm.key, tuple(served.prompt_ids)), served.prompt_ids, show_whitespace=True)
how = "4-bit weights (fast mode)" if served.fast else "float32 weights"
st.markdown(
    "**Step 3, the generation loop with a KV cache.** The first forward pass reads the whole prompt at once (the "
    "*prefill*) and stores every layer's keys and values. Each later pass reads **only the one new token** and "
    "looks back at the stored keys and values, so a reply costs one pass per token instead of re-reading the whole "
    "conversation each time."
)
k = st.columns(4)
k[0].metric("Time to first token", f"{1000 * served.prefill_seconds:,.0f} ms",
            help="The prefill over the whole prompt, then the first pick.")
k[1].metric("Per new token", f"{1000 * served.per_token_seconds:,.0f} ms" if served.decode_seconds else "—",
            help="Mean time of the steps after the first (one new token each, with the cache).")
k[2].metric("Tokens / s", f"{served.tokens_per_second:,.1f}" if served.decode_seconds else "—",
            help="Generated tokens per second after the first token: the speed a chat user watches.")
k[3].metric("Total", f"{served.total_seconds:,.2f} s")
st.caption(
    f":material/speed: Measured on this computer's CPU ({how}) when this exact request was first answered; the "
    "result is cached, so the same request from anyone shows the same answer and timings. The machine is shared: "
    "other visitors' work slows it down. A hosted API runs on GPUs and batches many users' requests together."
)
rows = pd.DataFrame(serving.step_rows(served))
rows["token chosen"] = [token_label(p) for p in rows["token chosen"]]
st.dataframe(
    rows, hide_index=True, width="stretch", key="api_steps",
    column_config={
        "probability": st.column_config.NumberColumn(format="%.3f"),
        "milliseconds": st.column_config.NumberColumn(format="%.0f"),
    },
)
st.markdown(
    f"**Step 4, detokenize.** The {served.completion_tokens} chosen tokens are turned back into text"
    + (f" (the end-of-turn token `{served.eos_token}` is dropped)" if served.finish_reason == "stop" else "")
    + ": that text is the `content` of the response."
)
st.code(served.text or "⟨empty reply⟩", language=None, wrap_lines=True)

# ------------------------------------------------------------------------------------------------ elsewhere
st.subheader("4. The same request, from code")
st.markdown(
    "**Code to run elsewhere, not here.** It sends the request above to an OpenAI-compatible server you start on "
    f"your own machine (for example llama.cpp's `llama-server` with the {md_escape(lm.info.name)} GGUF file, which "
    f"listens on `{serving.LOCAL_SERVER_URL}`). For a hosted API, change the URL and add your API key. Anthropic's "
    "Messages API has the same idea in a slightly different shape: the system prompt is a separate `system` field, "
    "and the reply says `stop_reason` (`end_turn` or `max_tokens`) instead of `finish_reason`."
)
code = serving.client_code(body)
t_curl, t_py = st.tabs(["curl", "Python (openai package)"])
t_curl.code(code["curl"], language="bash", wrap_lines=True)
t_py.code(code["python"], language="python")
st.caption(
    "Another server or another model gives another reply, and its own token counts (every tokenizer cuts text "
    "differently)."
)
