"""Fine-tuning on your own dataset, live on this CPU (a per-session LoRA adapter), and instruction tuning."""

import pandas as pd
import streamlit as st

from components import caches
from components.display import show_error, token_chips
from components.frame import end_page, ensure_frame, fragment, page_links
from components.inputs import prompt_input
from components.model import require_lm
from components.state import current_run, first_time_finished, reset_run, start_run, stop_run
from engine import datasets as dsets
from engine import training as tr
from engine.lm import InputError
from engine.text import md_escape

DEFAULT_TYPED = "Our class mascot is a purple owl.\nOur class pet is a tortoise called Biscuit."
DEFAULT_INSTRUCTION = "Give me three tips for studying."
SOURCES = ("Built-in", "Upload", "Type")
RANKS = (1, 2, 4, 8, 16)

ensure_frame()
st.title("Fine-tuning on your own data")
st.markdown(
    "> The post's hands-on list ends with *fine-tuning small models on your own dataset*.\n\n"
    "After pretraining, a model is **fine-tuned**: trained a little more, with the same next-token loss, on a small "
    "set of chosen examples (questions and answers, a style, your documents). As a practitioner you rarely pretrain "
    "an LLM: you **use** one and sometimes fine-tune it. Here you fine-tune the real model, live, on this computer."
)
lm = require_lm()
key = lm.key

# ------------------------------------------------------------------------------------------------ 1. instruction tuning
st.subheader("1. Instruction tuning: continuing text vs answering")
st.markdown(
    "A pretrained model only *continues* text. **Instruction tuning** fine-tunes it on conversations written in a "
    f"fixed **chat template**, so that after the marker for the assistant's turn it answers. The model here "
    f"({md_escape(lm.spec.label)}) has **already been instruction-tuned** (so has the one on the Pretraining page: "
    "it is the same model). Below, this same instruction-tuned model gets your request twice: as raw text and inside "
    "its chat template. No base model runs here, so this shows what the template does for an instruction-tuned model, "
    "not a before/after of instruction tuning."
)
instruction = prompt_input("Request", key="ft_instr", default=DEFAULT_INSTRUCTION, height=68)
if not instruction.strip():
    st.info("Type a request to compare the two.", icon=":material/edit:")
else:
    try:
        raw = caches.reply(key, instruction, 40)
        chat = caches.reply(key, lm.chat_prompt([{"role": "user", "content": instruction}]), 40)
        raw_out, chat_out = raw.text, chat.text
    except InputError as err:
        show_error(err)
    else:
        g1, g2 = st.columns(2)
        with g1:
            st.markdown("**Raw text** (continuation)")
            st.code(instruction + raw_out if raw_out.strip() else instruction + " ⟨the model ended the text here⟩",
                    language=None, wrap_lines=True)
        with g2:
            st.markdown("**With the chat template** (answer)")
            st.code(chat_out if chat_out.strip() else "⟨empty answer⟩", language=None, wrap_lines=True)
        st.caption(
            "Greedy decoding, at most 40 new tokens each, computed live by the model"
            + (" in the fast 4-bit mode (close to the float32 path, not equal)." if raw.fast or chat.fast else ".")
        )
        with st.expander("What the chat template turns your request into", icon=":material/code:"):
            st.code(lm.chat_prompt([{"role": "user", "content": instruction}]), language=None, wrap_lines=True)

# ------------------------------------------------------------------------------------------------ 2. data
st.subheader("2. Your data")
st.markdown(
    "Pick a built-in dataset (written for this app), upload your own, or type examples. Files: **.txt** (one example "
    "a line), **.csv** (a `text` column, or `prompt` and `response` columns) or **.jsonl** (`text`, or `prompt` and "
    "`completion`, or a chat `messages` list). "
    f"Limits: {dsets.MAX_FILE_MB} MB per file, {dsets.MAX_ROWS} examples, "
    f"{dsets.MAX_ROW_TOKENS} tokens per example (chat template included), plain text only (no HTML)."
)
source = st.segmented_control("Data", SOURCES, default="Type" if "ft_text" in st.query_params else "Built-in",
                              key="ft_source", bind="query-params") or "Built-in"
builtin = None
if source == "Built-in":
    builtin = st.selectbox("Built-in dataset", list(dsets.BUILT_INS), key="ft_builtin", bind="query-params",
                           format_func=lambda k: dsets.BUILT_INS[k].title)
    st.caption(dsets.BUILT_INS[builtin].about + " Written for this app.")
    name, data = f"builtin:{builtin}", b""
elif source == "Upload":
    upload = st.file_uploader("Your dataset", type=list(dsets.EXTENSIONS), key="ft_upload",
                              help="The file stays in this session's memory; it is never saved on the server.")
    if upload is None:
        st.info("Upload a .txt, .csv or .jsonl file to see its examples.", icon=":material/upload_file:")
    name, data = (upload.name, upload.getvalue()) if upload is not None else ("", b"")
else:
    typed = prompt_input("Examples, one a line", key="ft_text", default=DEFAULT_TYPED, height=120,
                         help="Each line is one example of plain text.")
    name, data = "typed", typed.encode("utf-8")

# No data yet (or unreadable data): the settings below still show, so a shared link keeps them, but nothing trains.
prep = None
if name:
    try:
        prep = caches.fine_tune_dataset(key, name, data)
    except (dsets.DatasetError, InputError) as err:
        show_error(err)

if prep is not None:
    kind = prep.dataset.kind
    c1, c2, c3 = st.columns(3)
    c1.metric("Examples", f"{len(prep.tokens)}", help=f"Read as {prep.dataset.fmt}.")
    c2.metric("Train / validation", f"{len(prep.train_idx)} / {len(prep.val_idx)}",
              help="A seeded random split: the validation rows are never trained on.")
    c3.metric("Tokens trained on", f"{prep.trained_tokens:,}", help="Over the training rows, prompt tokens excluded.")
    if prep.dataset.skipped:
        st.caption(f"Empty rows skipped: {', '.join(map(str, prep.dataset.skipped[:20]))}.")
    if not prep.val_idx:
        st.caption(f"Fewer than {dsets.MIN_FOR_VALIDATION} examples: all are trained on, so there is no validation curve.")
    st.dataframe(pd.DataFrame(prep.rows()), hide_index=True, height=220)
    if kind == "chat":
        st.markdown(
            "Each prompt/response row is written into the model's chat template. **Only the response is trained on**: "
            "the prompt tokens (grey, struck through) are read but masked out of the loss, so the model learns to "
            "answer, not to write questions. One example:"
        )
    else:
        st.markdown("Plain text: every token is trained on except the first (nothing comes before it). One example:")
    pieces, ids, masked = dsets.token_pieces(lm, prep.tokens[0])
    token_chips(pieces, ids, dimmed=masked)

# ------------------------------------------------------------------------------------------------ 3. train
st.subheader("3. Train a LoRA adapter")
st.markdown(
    "The page trains a **LoRA adapter** (low-rank adaptation, the most common way to fine-tune today): instead of "
    "changing a weight matrix W, it learns a small update ΔW = B·A of rank r for the MLP output weights of the "
    "last layers. Each step takes a mini-batch of examples, so the loss jumps around; the **validation loss** on the "
    "held-out rows says whether it learns something general. The adapter belongs to your browser session only: "
    "everyone else keeps using the original model. One training runs at a time on this server; others wait in line."
)
s1, s2 = st.columns(2)
steps = s1.slider("Steps", 10, tr.MAX_DATASET_STEPS, tr.DEFAULT_DATASET_STEPS, step=10, key="ft_steps",
                  bind="query-params", help=f"Each step trains on {tr.DEFAULT_BATCH} examples.")
lr = s2.select_slider("Learning rate (Adam)", options=list(tr.DATASET_LRS), value=tr.DEFAULT_DATASET_LR, key="ft_lr",
                      bind="query-params", help="Too small: nothing is learned in time. Too large: it memorises its "
                      "rows and forgets other things (watch the unrelated probe).")
s3, s4 = st.columns(2)
rank = s3.select_slider("LoRA rank r", options=list(RANKS), value=tr.DEFAULT_RANK, key="ft_rank", bind="query-params",
                        help="Columns of A and rows of B: more rank, more weights trained.")
layers = s4.slider("Adapted layers (the last N)", 1, tr.MAX_ADAPTED_LAYERS, tr.DEFAULT_LAYERS, key="ft_layers",
                   bind="query-params", help=f"Which of the model's {lm.info.layers} layers get an adapter.")
settings = tr.FineTuneSettings(steps=steps, lr=lr, rank=rank, layers=layers)
st.caption(f"Seeded (seed {settings.seed}): the same data and settings give the same run.")

run = current_run(key)
b1, b2, _ = st.columns([1, 1, 2])
if b1.button(f"Fine-tune {steps} steps", type="primary", icon=":material/model_training:", key="ft_train",
             disabled=prep is None):
    try:
        start_run(key, prep.dataset.name, kind, prep.train, prep.val, settings)
    except (tr.BusyError, ValueError) as err:
        show_error(err)
    run = current_run(key)
if b2.button("Reset", icon=":material/restart_alt:", key="ft_reset", disabled=run is None,
             help="Throw your adapter away and go back to the original model."):
    reset_run()
    run = None
    st.toast("Adapter removed: you are back to the original model.")


@fragment(run_every=1.0 if run is not None and not run.run.finished else None)
def live_training() -> None:
    """Redraws every second while the session's run is queued or training (the training runs in its own thread)."""
    live = current_run(key)
    if live is None:
        return
    r = live.run
    if r.status == "queued":
        st.info(f"**Waiting in line:** {r.ahead} training(s) ahead of yours on this server. It starts by itself.",
                icon=":material/hourglass_top:")
    elif r.status == "running":
        st.progress(r.fraction, text=f"Step {r.steps_done} of {r.settings.steps}")
    if not r.finished:
        st.button("Stop", icon=":material/stop_circle:", key="ft_stop", on_click=stop_run)
    if r.train_losses:
        st.line_chart(pd.DataFrame(tr.loss_table(r)).set_index("step"), x_label="step", y_label="loss (nats)",
                      height=280)
    if first_time_finished(live):
        st.rerun()  # the whole page: the results below need the finished run


live_training()
if prep is None:
    end_page()  # what follows compares the adapter with the data above

r = run.run if run is not None and run.run.finished else None
if r is not None and r.status == "failed":
    st.error(f"The training failed: {r.error}", icon=":material/error:")
elif r is not None and not r.train_losses:
    st.info("Stopped before the first step: nothing was trained.", icon=":material/stop_circle:")
if r is not None and r.train_losses and r.status != "failed":

    # ------------------------------------------------------------------------------------------------ 4. what it learned
    st.subheader("4. What it learned")
    if run.dataset != prep.dataset.name:
        st.caption(f":material/info: Your adapter was trained on “{md_escape(run.dataset)}”; press Fine-tune to train on "
                   "the data above.")
    summary = tr.run_summary(lm, r)
    fit = tr.overfitting(r.val_points)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Training loss (last step)", f"{summary.last_loss:.3f}", delta=f"{summary.train_change:+.3f}",
              delta_color="inverse")
    if summary.val_change is not None:
        m2.metric("Validation loss", f"{summary.val_after:.3f}", delta=f"{summary.val_change:+.3f}",
                  delta_color="inverse", help="On the held-out rows, before → after training.")
    m3.metric("Training time", f"{r.seconds:.1f} s",
              help=f"{r.steps_done} steps" + (" (stopped)" if r.status == "stopped" else ""))
    m4.metric("Weights trained", f"{run.adapter.num_params:,}",
              help=f"{summary.share:.3%} of {lm.info.parameters:,}; {run.adapter.nbytes:,} bytes")
    if fit is not None:
        if fit.rising:
            st.markdown(f"The validation loss was lowest at **step {fit.best_step}** ({fit.best_loss:.3f}) and rose to "
                        f"{fit.last_loss:.3f} by step {fit.last_step}: the model started **memorising its training rows** "
                        "instead of learning what they share (*overfitting*). Fewer steps or a smaller learning rate help.")
        else:
            st.markdown(f"The validation loss went from {summary.val_before:.3f} to {fit.last_loss:.3f} (lowest "
                        f"{fit.best_loss:.3f} at step {fit.best_step}): no sign of overfitting yet. More steps or a larger "
                        "learning rate will show it.")

    held = dsets.held_out_probes(prep) if run.dataset == prep.dataset.name else []
    if held:
        st.markdown("**Held-out rows** (never trained on): the loss of each row's own answer, before and after.")
        table = []
        for probe, ref in held:
            before = caches.fine_tune_probe_before(key, probe, kind, ref)
            after = run.probe(probe, ref)
            table.append({"probe": probe, "reference": ref, "loss before": f"{before.reference_loss:.3f}",
                          "loss after": f"{after.reference_loss:.3f}"})
        st.dataframe(pd.DataFrame(table), hide_index=True)

    para_default, unrel_default = dsets.default_probes(kind, builtin)
    st.markdown("**Did it generalise, did it forget?** A held-out prompt, the same idea in new words (a paraphrase) and "
                "something unrelated, answered by both models (greedy, 20 tokens):")
    p1, p2 = st.columns(2)
    with p1:
        para = prompt_input("Paraphrased probe", key="ft_para", default=para_default, height=68,
                            help="Ask about your data in words no row uses.")
    with p2:
        unrel = prompt_input("Unrelated probe", key="ft_unrel", default=unrel_default, height=68,
                             help="Something your data never mentions: does the model still answer it as before?")
    probes = [("Held-out", held[0][0])] if held else []
    probes += [(label, text) for label, text in (("Paraphrase", para), ("Unrelated", unrel)) if text.strip()]
    rows = []
    for label, text in probes:
        try:
            before = caches.fine_tune_probe_before(key, text, kind)
            after = run.probe(text)
        except (InputError, ValueError) as err:
            show_error(err)
            continue
        rows.append({"probe": f"{label}: {text}", "original model": before.text, "fine-tuned": after.text,
                     "p(original's top token)": f"{before.p_top:.1%} → {after.p_top:.1%} ({before.top_token!r})"})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        st.caption("Computed live. A paraphrase answered in the new way means the model **generalised**; an unrelated "
                   "answer that changed, or its top token's probability falling, means it **forgot** something "
                   "(catastrophic forgetting).")

    # ------------------------------------------------------------------------------------------------ 5. take it with you
    st.subheader("5. Take your adapter with you")
    st.markdown(
        "The adapter is saved in the **PEFT** format (`adapter_config.json` and `adapter_model.safetensors`), which "
        "Hugging Face's `peft` library loads on top of the base model. It lives **only in this browser session**: on a "
        "server with several copies of the app it is lost if your copy restarts, so download it first."
    )
    st.download_button("Download the adapter (PEFT, .zip)", data=run.peft_zip(), file_name="llm-explainer-adapter.zip",
                       mime="application/zip", icon=":material/download:", key="ft_download")
    hub_id = getattr(lm.spec, "hub_id", "") or "<the base model's hub id>"
    question = (held[0][0] if held and kind == "chat" else "What is our class mascot?").replace('"', "'")
    st.code(
        "# pip install peft transformers  (unzip the file first)\n"
        "from peft import PeftModel\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'base = AutoModelForCausalLM.from_pretrained("{hub_id}")\n'
        'model = PeftModel.from_pretrained(base, "llm-explainer-adapter")\n'
        f'tok = AutoTokenizer.from_pretrained("{hub_id}")\n'
        f'msgs = [{{"role": "user", "content": "{question}"}}]\n'
        "inputs = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors=\"pt\", return_dict=True)\n"
        "print(tok.decode(model.generate(**inputs, max_new_tokens=30)[0]))",
        language="python",
    )
    st.caption("This app runs the model's 4-bit file turned back into float32, so on the hub's original weights the "
               "adapter's answers are close to, not exactly, what you see here.")

st.markdown("Next: how human preferences steer a model (RLHF and DPO), on its own page:")
page_links(("rlhf",))
