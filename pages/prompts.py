"""Prompts & chat: the chat template, zero- vs few-shot, system prompts, wording, and a small chat."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import csv_download, show_chart, show_error, stream_text, token_chips
from components.figures.bars import label_figure, probability_bars
from components.frame import ensure_frame, fragment
from components.inputs import clean_text, cleaned, fast_generation_toggle
from components.model import require_lm
from engine.prompting import (
    MAX_CHAT_TOKENS,
    MAX_CHAT_TURNS,
    SENTIMENT_EXAMPLES,
    SENTIMENT_LABELS,
    few_shot_prompt,
    label_summary,
    trim_history,
)
from engine.text import first_line, html_escape

SYSTEM_PRESETS = {
    "A pirate": "You are a pirate. Always answer like a pirate.",
    "One word only": "Answer with one word only.",
    "A patient teacher": "You are a patient teacher for ten-year-olds. Use very simple words.",
    "Your own…": "",
}
WORDINGS = (
    "The capital of Australia is",
    "Q: What is the capital of Australia?\nA: The capital of Australia is",
    "Many people think it is Sydney, but the capital of Australia is",
    "Australia's capital city is called",
)
HISTORY_KEY = "pr_chat_history"
REPLY_TOKENS = 24  # cap on the compared replies (each token is one forward pass)


ensure_frame()
st.title("Prompts & chat")
st.markdown(
    "The post calls a **prompt** *the input text you give to get a specific response*, and **prompt engineering** a "
    "way to steer a model *without retraining*. The model below is the same throughout: only its input changes."
)

lm = require_lm()
key = lm.key

# --------------------------------------------------------------------------------------------- chat template
st.subheader("A chat is one long string")
st.markdown(
    "A chat model still does next-token prediction on one sequence. Its **chat template** turns the list of messages "
    "into a single string, with special tokens marking where each turn starts and ends. Edit the messages and see the "
    "exact text the model reads."
)
use_system = st.checkbox("Include a system message", value=True, key="pr_use_system", bind="query-params")
system = cleaned(
    st.text_area("System message", value="You are a helpful assistant.", key="pr_system", height=68,
                 bind="query-params", disabled=not use_system), limit=2000
)
user = cleaned(st.text_area("User message", value="What is the capital of France?", key="pr_user", height=68,
                            bind="query-params"), limit=2000)
assistant = cleaned(
    st.text_area("Assistant reply (optional: an earlier answer in the conversation)", value="", key="pr_assistant",
                 height=68, bind="query-params"), limit=2000
)
add_gen = st.checkbox(
    "End with the start of an assistant turn (the generation prompt)", value=True, key="pr_addgen",
    bind="query-params", help="This is what makes the model's next tokens its reply.",
)
messages = tuple(
    (role, content)
    for role, content in (("system", system if use_system else ""), ("user", user), ("assistant", assistant))
    if content.strip()
)
if not messages:
    st.info("There are no messages: write a system, user or assistant message to see the template.",
            icon=":material/edit:")
else:
    try:
        rendered = caches.render_chat(key, messages, add_gen)
    except ValueError as err:
        show_error(err)
    else:
        n_special = sum(rendered.special)
        c1, c2 = st.columns(2)
        c1.metric("Tokens the model reads", f"{rendered.n_tokens:,}")
        c2.metric("Special tokens among them", n_special)
        st.code(rendered.text, language=None, wrap_lines=True)
        pieces = caches.token_pieces(key, tuple(rendered.ids))
        token_chips(
            pieces, rendered.ids, show_whitespace=True,
            titles=["special token" if s else "text token" for s in rendered.special],
        )
        st.caption(
            "Special tokens: "
            + ", ".join(f"`{t}` = id {i}" for t, i in lm.special_tokens().items() if i in rendered.ids)
            + ". `↵` is a newline, `·` a space. Hover a chip to see which kind it is."
        )
        if rendered.default_system is not None:
            st.info(
                f"No system message was given, so the template inserted its own: “{rendered.default_system}”. The "
                "model always reads *some* system turn.",
                icon=":material/info:",
            )
        if any(t in content for _, content in messages for t in lm.special_tokens()):
            st.warning(
                "A message contains special-token text such as `<|im_end|>`: the tokenizer turned it into the real "
                "control token, so the message can fake the end of a turn. Chat services strip or escape these "
                "(this is one route to *prompt injection*).",
                icon=":material/gpp_maybe:",
            )

# --------------------------------------------------------------------------------------------- zero vs few shot
st.subheader("Zero-shot vs few-shot")
st.markdown(
    "**Zero-shot**: give the instruction and the input, and ask for the answer directly. **Few-shot**: the same "
    "instruction, then a few solved examples in the same format, then the input. Both prompts share the instruction, "
    "so any difference comes from the examples alone. Nothing is trained; the examples only change the text the "
    "model continues. Below, the model's probability of each label word after each prompt."
)
review = cleaned(
    st.text_input("Review to classify", value="The food was cold and the waiter ignored us.", key="pr_review",
                  max_chars=300, bind="query-params"),
    limit=300,
).replace("\n", " ")
if not review.strip():
    st.info("Type a short review to classify.", icon=":material/edit:")
else:
    prompts = {
        "zero-shot": few_shot_prompt((), review),
        f"few-shot ({len(SENTIMENT_EXAMPLES)} examples)": few_shot_prompt(SENTIMENT_EXAMPLES, review),
    }
    scores = {name: caches.label_scores(key, p, SENTIMENT_LABELS) for name, p in prompts.items()}
    show_chart(label_figure(scores), key="pr_labels")
    cols = st.columns(len(prompts))
    for col, (name, prompt) in zip(cols, prompts.items()):
        with col:
            st.markdown(f"**{name}**")
            st.code(prompt, language=None, wrap_lines=True)
            answer = first_line(caches.reply(key, prompt, 4).text)
            best, mass = label_summary(scores[name])
            st.markdown(
                f"Generated answer (greedy): **{html_escape(answer) or '(nothing)'}**  \n"
                f"Most likely label: `{best.label.strip()}` ({best.prob:.1%}); the {len(scores[name])} labels together "
                f"hold {mass:.1%} of the probability."
            )
    table = pd.DataFrame(
        [{"prompt": name, "label": s.label, "p(label | prompt)": s.prob, "share among labels": s.share}
         for name, rows in scores.items() for s in rows]
    )
    csv_download(table, "zero_vs_few_shot.csv", key="pr_labels_csv")
    st.caption(
        "Watch two things: how much probability lands on the label words at all, and which one wins. A small model "
        "can still pick the wrong label with examples: try a sarcastic review."
    )

# --------------------------------------------------------------------------------------------- system prompt
st.subheader("The system prompt steers the answer")
st.markdown(
    "The system message is just more text at the start of the string, but the model was fine-tuned to follow it. "
    "Compare the model's reply and its first-token distribution without and with your system prompt."
)
q_col, s_col = st.columns(2)
question = cleaned(q_col.text_input("User message", value="Say hello to my class.", key="pr_question",
                                    max_chars=300, bind="query-params"), limit=300)
preset = s_col.selectbox("System prompt", list(SYSTEM_PRESETS), key="pr_preset", bind="query-params")
if preset == "Your own…":
    sys_prompt = cleaned(st.text_area("Your system prompt", value="Always answer in French.", key="pr_sys_custom",
                                      height=68, bind="query-params"), limit=500)
else:
    sys_prompt = SYSTEM_PRESETS[preset]
    st.caption(f"System prompt: “{sys_prompt}”")
if not question.strip():
    st.info("Type a user message to compare the answers.", icon=":material/edit:")
else:
    variants = {"Template's default system prompt": (("user", question),)}
    if sys_prompt.strip():
        variants["Your system prompt"] = (("system", sys_prompt), ("user", question))
    cols = st.columns(len(variants))
    fast_replies = []
    for i, (col, (name, msgs)) in enumerate(zip(cols, variants.items())):
        with col:
            st.markdown(f"**{name}**")
            text = caches.render_chat(key, msgs).text
            try:
                view = caches.text_distribution(key, text).view(lm, 8)
                reply = caches.reply(key, text, REPLY_TOKENS)
            except ValueError as err:
                show_error(err)
                continue
            fast_replies.append(reply.fast)
            st.markdown(f"> {html_escape(reply.text.strip()) or '(empty reply)'}")
            show_chart(
                probability_bars([c.text for c in view.candidates], [c.prob for c in view.candidates],
                                 view.other_mass, title="first token of the reply"),
                key=f"pr_sys_dist_{i}", height=320,
            )
    st.caption(
        f"Replies are greedy (always the most likely token) and cut at {REPLY_TOKENS} tokens. The first token is the "
        "top bar of the chart (float32)"
        + ("; the rest is written in the fast 4-bit mode, close to the float32 path but not equal."
           if any(fast_replies) else ", and so is the rest.")
    )

# --------------------------------------------------------------------------------------------- can and cannot
st.subheader("What prompt engineering can and cannot do")
st.markdown(
    "**It can** choose among things the model already does: the format of the answer, its tone, the task it thinks "
    "it is doing, and which of the answers it already knows comes out on top. **It cannot** add knowledge the "
    "weights do not hold, make a small model reliable, or guarantee anything: the same question in different words "
    "can get a different answer. Here is one question, worded four ways, on this model:"
)
custom = cleaned(st.text_input("Add your own wording", value="", key="pr_wording", max_chars=300,
                               bind="query-params"), limit=300)
wordings = list(WORDINGS) + ([custom] if custom.strip() else [])
rows = []
for wording in wordings:
    canberra, sydney = caches.label_scores(key, wording, (" Canberra", " Sydney"))
    top = caches.text_distribution(key, wording).view(lm, 1).candidates[0]
    rows.append({"prompt": wording.replace("\n", " ↵ "), "p(' Canberra')": canberra.prob,
                 "p(' Sydney')": sydney.prob, "most likely next token": f"'{top.text}' ({top.prob:.1%})"})
table = pd.DataFrame(rows)
st.dataframe(table, hide_index=True,
             column_config={c: st.column_config.NumberColumn(format="percent") for c in ("p(' Canberra')", "p(' Sydney')")})
csv_download(table, "wording.csv", key="pr_wording_csv")
st.caption("The right answer is Canberra. Wording moves probability between answers the model already has in mind.")

# --------------------------------------------------------------------------------------------- chat
st.subheader("Chat with the model")
st.markdown(
    "A chatbot is this model served in a loop: your message is added to the conversation, the whole conversation is "
    "templated into one string, and the model generates the reply token by token. This is "
    f"{lm.info.name}, a model with {lm.info.parameters:,} parameters: expect fluent text and frequent mistakes."
)
c_sys, c_len, c_temp, c_fast = st.columns([3, 1, 1, 1], vertical_alignment="center")
chat_system = cleaned(c_sys.text_area("System prompt for the chat", value="You are a helpful assistant.",
                                      key="pr_chat_system", height=68), limit=500)
max_new = c_len.slider("Reply length cap (tokens)", 16, 200, 96, step=8, key="pr_chat_len")
temperature = c_temp.slider("Temperature", 0.0, 1.5, 0.0, step=0.1, key="pr_chat_temp",
                            help="0 = always the most likely token.")
with c_fast:
    fast = fast_generation_toggle("pr_fast")


@fragment
def chat_section(lm, key: str, chat_system: str, max_new: int, temperature: float, fast: bool) -> None:
    """The chat, as a fragment: a message and its streamed reply rerun only this section, not the lessons above. The
    settings stay outside it: a change reruns the page, so the sidebar's share link carries them."""
    st.session_state.setdefault(HISTORY_KEY, [])
    history: list[dict[str, str]] = st.session_state[HISTORY_KEY]
    turns = sum(m["role"] == "user" for m in history)
    box = st.container(border=True)
    with box:
        if not history:
            st.caption("No messages yet. Say hello below.")
        for m in history:
            with st.chat_message(m["role"]):
                st.text(m["content"])
        new_area = st.container()  # the exchange being generated appears above the input box, after the history
        full = turns >= MAX_CHAT_TURNS
        prompt = st.chat_input(
            "Conversation full: reset to start again" if full else "Your message", key="pr_chat_input", max_chars=1000,
            disabled=full,
        )
        if prompt is not None and not full:
            msg, _ = clean_text(prompt, limit=1000)
            if not msg.strip():
                new_area.caption(":material/info: Empty message ignored.")
            else:
                with new_area.chat_message("user"):
                    st.text(msg)
                convo = ([{"role": "system", "content": chat_system}] if chat_system.strip() else []) + history + [
                    {"role": "user", "content": msg}
                ]
                try:
                    kept, dropped = trim_history(lm, convo, MAX_CHAT_TOKENS)
                except ValueError as err:
                    with new_area:
                        show_error(err)
                else:
                    if dropped:
                        new_area.caption(f":material/info: {dropped} oldest message(s) no longer fit and were left out.")
                    ids = lm.encode(lm.chat_prompt(kept))
                    stream = lm.generate_stream(ids, max_new, temperature=temperature, top_k=0, top_p=1.0, seed=0,
                                                fast=fast)
                    with new_area.chat_message("assistant"):
                        spot = st.empty()
                        reply = stream_text(stream, lambda t: spot.text(t.text)).text
                    history.append({"role": "user", "content": msg})
                    history.append({"role": "assistant", "content": reply.strip() or "(empty reply)"})
                    turns += 1
    st.caption(
        f"{turns} of {MAX_CHAT_TURNS} turns used. Replies stop at {max_new} tokens or at `<|im_end|>`. When the "
        f"conversation outgrows {MAX_CHAT_TOKENS} tokens, whole turns are dropped, oldest first; the system prompt is "
        "always kept. "
        + ("Replies use the fast 4-bit mode: close to the float32 path, not equal." if fast
           else "Replies use float32 arithmetic on the 4-bit weights unpacked to float32.")
    )
    r_col, _ = st.columns([1, 3])
    if r_col.button("Reset the chat", icon=":material/restart_alt:", key="pr_chat_reset"):
        st.session_state[HISTORY_KEY] = []
        st.rerun()
    with st.expander("The exact text the model reads for this conversation", icon=":material/code:"):
        convo = ([{"role": "system", "content": chat_system}] if chat_system.strip() else []) + history
        if not convo:
            st.caption("Nothing yet: the conversation is empty.")
        else:
            view = caches.render_chat(key, tuple((m["role"], m["content"]) for m in convo), True)
            st.caption(f"{view.n_tokens:,} tokens.")
            st.code(view.text, language=None, wrap_lines=True)


chat_section(lm, key, chat_system, int(max_new), float(temperature), bool(fast))
